package distill

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	G "gorgonia.org/gorgonia"
)

// LayerPair names a (student, teacher) pair of post-norm hidden states for
// the intermediate-state loss. Layer k < NumLayers is input_layernorm's
// output of layer k (the normalised residual stream entering it); k =
// NumLayers is the final norm's output.
type LayerPair struct {
	Student int `yaml:"student" json:"student"`
	Teacher int `yaml:"teacher" json:"teacher"`
}

// isProjName is the shared learned projection student hidden → teacher
// hidden. It is trained with the student but is not part of the student's
// Hugging Face checkpoint.
const isProjName = "distill.is_proj.weight"

func checkPairs(pairs []LayerPair, student, teacher *model.Config) error {
	if len(pairs) == 0 {
		return nil
	}
	if teacher == nil {
		return fmt.Errorf("intermediate-state loss needs a teacher")
	}
	seen := map[int]bool{}
	for _, p := range pairs {
		if p.Student < 0 || p.Student > student.NumLayers {
			return fmt.Errorf("intermediate pair %d→%d: student layer %d outside 0..%d (layers, or %d for the final norm)",
				p.Student, p.Teacher, p.Student, student.NumLayers, student.NumLayers)
		}
		if p.Teacher < 0 || p.Teacher > teacher.NumLayers {
			return fmt.Errorf("intermediate pair %d→%d: teacher layer %d outside 0..%d (layers, or %d for the final norm)",
				p.Student, p.Teacher, p.Teacher, teacher.NumLayers, teacher.NumLayers)
		}
		if seen[p.Teacher] {
			return fmt.Errorf("intermediate pairs: teacher layer %d used twice", p.Teacher)
		}
		seen[p.Teacher] = true
	}
	return nil
}

// isLossNode is the intermediate-state loss: mean over pairs and rows of
// 1 − cos(h_s·Wᵀ, h_t), with one shared projection W [Ht, Hs]. The teacher
// states come from st.isTeacher at run time.
func isLossNode(hs []*G.Node, w *G.Node, st *stepState, rows, hsDim, htDim int) (*G.Node, error) {
	P := len(hs)
	fw := newOp("is_loss", P+1)
	proj := make([][]float32, P) // h_s·Wᵀ per pair, kept for the backward
	cos := make([][]float32, P)
	for i := range proj {
		proj[i] = make([]float32, rows*htDim)
		cos[i] = make([]float32, rows)
	}
	fw.do = func(v []G.Value) (float32, error) {
		wd := f32(v[P])
		var total float64
		for p := 0; p < P; p++ {
			kernels.ParMatMulT(proj[p], f32(v[p]), wd, rows, htDim, hsDim, false)
			t := st.isTeacher[p]
			for r := 0; r < rows; r++ {
				y, tr := proj[p][r*htDim:(r+1)*htDim], t[r*htDim:(r+1)*htDim]
				var yy, tt, yt float64
				for i := range y {
					yy += float64(y[i]) * float64(y[i])
					tt += float64(tr[i]) * float64(tr[i])
					yt += float64(y[i]) * float64(tr[i])
				}
				c := yt / math.Sqrt(max(yy*tt, 1e-24))
				cos[p][r] = float32(c)
				total += 1 - c
			}
		}
		l := total / float64(rows*P)
		st.is = l
		return float32(l), nil
	}
	fw.diffWRT = make([]bool, P+1)
	for i := range fw.diffWRT {
		fw.diffWRT[i] = true
	}
	fw.diff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		// One op computes every gradient; the others only expose its
		// buffers (ordered after it by taking its output as input).
		bw := newOp("is_loss.dh0", P+3, rows, hsDim)
		dh := make([][]float32, P)
		dh[0] = bw.data()
		ext := make([]*kop, P+1)
		for p := 1; p < P; p++ {
			ext[p] = newOp(fmt.Sprintf("is_loss.dh%d", p), 1, rows, hsDim)
			dh[p] = ext[p].data()
		}
		ext[P] = newOp("is_loss.dW", 1, htDim, hsDim)
		dW := ext[P].data()
		for _, e := range ext[1:] {
			e.do = func([]G.Value) (float32, error) { return 0, nil }
		}
		dy := make([]float32, rows*htDim)
		bw.do = func(v []G.Value) (float32, error) {
			scale := scalarOf(v[0]) * st.gradScale * float32(rows) / float32(rows*P)
			wd := f32(v[P+2])
			clear(dW)
			for p := 0; p < P; p++ {
				t := st.isTeacher[p]
				for r := 0; r < rows; r++ {
					y, tr, d := proj[p][r*htDim:(r+1)*htDim], t[r*htDim:(r+1)*htDim], dy[r*htDim:(r+1)*htDim]
					var yy, tt float64
					for i := range y {
						yy += float64(y[i]) * float64(y[i])
						tt += float64(tr[i]) * float64(tr[i])
					}
					ny, nt := math.Sqrt(max(yy, 1e-24)), math.Sqrt(max(tt, 1e-24))
					c := float64(cos[p][r])
					// d(1−cos)/dy = −(t/(|y||t|) − cos·y/|y|²)
					a, b := float32(-1/(ny*nt)), float32(c/(ny*ny))
					for i := range y {
						d[i] = scale * (a*tr[i] + b*y[i])
					}
				}
				hsd := f32(v[2+p])
				kernels.ParSgemm(false, false, rows, hsDim, htDim, 1, dy, htDim, wd, hsDim, 0, dh[p], hsDim)
				kernels.ParSgemm(true, false, htDim, hsDim, rows, 1, dy, htDim, hsd, hsDim, 1, dW, hsDim)
			}
			return 0, nil
		}
		in := append(G.Nodes{grad, output}, inputs...)
		first, err := apply(bw, in...)
		if err != nil {
			return nil, err
		}
		res := make(G.Nodes, P+1)
		res[0] = first
		for p := 1; p <= P; p++ {
			if res[p], err = apply(ext[p], first); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	return apply(fw, append(append(G.Nodes{}, hs...), w)...)
}

// combineNode is L = L_logits + α·L_is with α = L_logits/L_is recomputed
// every micro-step and held constant for the gradient (the paper's dynamic
// weighting: both terms contribute equally).
func combineNode(logits, is *G.Node, st *stepState) (*G.Node, error) {
	fw := newOp("loss_total", 2)
	var alpha float32
	fw.do = func(v []G.Value) (float32, error) {
		a, b := scalarOf(v[0]), scalarOf(v[1])
		alpha = 0
		if b > 1e-12 {
			alpha = a / b
		}
		st.isAlpha = float64(alpha)
		return a + alpha*b, nil
	}
	fw.diffWRT = []bool{true, true}
	fw.diff = func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		ga := newOp("loss_total.dl", 2)
		ga.do = func(v []G.Value) (float32, error) { return scalarOf(v[1]), nil }
		gb := newOp("loss_total.dis", 2)
		gb.do = func(v []G.Value) (float32, error) { return alpha * scalarOf(v[1]), nil }
		na, err := apply(ga, output, grad)
		if err != nil {
			return nil, err
		}
		nb, err := apply(gb, output, grad)
		return G.Nodes{na, nb}, err
	}
	return apply(fw, logits, is)
}
