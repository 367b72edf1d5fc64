package distill

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// PlanConfig is what a device training run's memory depends on: the two
// architectures (from their config files alone), the micro-batch, the
// precision, the data-parallel world and its --zero sharding, activation
// recomputation and the logit chunk.
type PlanConfig struct {
	Student *model.Config
	Teacher *model.Config // nil when no loss reads a teacher
	Seq     int           // tokens per sample
	Batch   int           // samples per micro-batch
	// Accum is the micro-batches one GPU runs per optimizer step (global
	// batch / (micro-batch · world)); above 1 the step's gradient sum
	// needs its own arena.
	Accum     int
	Precision string // "f32" (the default; TF32 products) or "bf16"
	World     int    // data-parallel ranks (GPUs); 0 means 1
	// Zero is the optimizer sharding over the world: 0 none, 1 the f32
	// master weights and AdamW moments, 2 also the gradients.
	Zero      int
	Recompute bool // keep only each layer's input; recompute the layer in the backward pass
	// Offload keeps the f32 master weights and AdamW moments in host
	// memory (bf16 with Zero 0 only; EngineConfig.Offload): the student's
	// matrices are stored only in bf16 on the device.
	Offload bool
	// LogitChunk is the tokens per logit chunk (LogitChunk of Config): the
	// student's and the teacher's logits exist for that many rows at a
	// time. 0 means the whole micro-batch.
	LogitChunk int
	Losses     Losses // the loss terms (their number, top-k, the teacher)
}

// Plan parts, in the order Parts lists them.
const (
	PartTeacherWeights = "teacher_weights"
	PartStudentWeights = "student_weights"
	PartGradients      = "gradients"
	PartOptimizer      = "master_weights_and_moments"
	PartActivations    = "activations"
	PartLogitChunks    = "logit_chunks"
	PartWorkspace      = "workspace"
)

// PlanPart is one part of a plan's per-GPU bytes.
type PlanPart struct {
	Name  string
	Bytes int64
}

// Plan is the device memory one GPU of a training run holds at its peak,
// by part. See NewPlan for the formula.
type Plan struct {
	PerGPUBytes int64
	Parts       []PlanPart
	// StudentParams and TeacherParams are the parameter counts the
	// weights parts come from.
	StudentParams, TeacherParams int64
	// HostBytes is the host memory optimizer offload adds (per GPU): the
	// f32 master weights and two moments, 12 B per parameter, and the
	// transfer scratch. 0 without PlanConfig.Offload.
	HostBytes int64
}

// Part is the bytes of part name (0 when absent).
func (p Plan) Part(name string) int64 {
	for _, x := range p.Parts {
		if x.Name == name {
			return x.Bytes
		}
	}
	return 0
}

// MarshalJSON writes {"per_gpu_bytes": N, "parts": {name: bytes, …}}.
func (p Plan) MarshalJSON() ([]byte, error) {
	parts := map[string]int64{}
	for _, x := range p.Parts {
		parts[x.Name] = x.Bytes
	}
	return json.Marshal(struct {
		PerGPU        int64            `json:"per_gpu_bytes"`
		Parts         map[string]int64 `json:"parts"`
		StudentParams int64            `json:"student_params"`
		TeacherParams int64            `json:"teacher_params,omitempty"`
		HostBytes     int64            `json:"host_bytes,omitempty"`
	}{p.PerGPUBytes, parts, p.StudentParams, p.TeacherParams, p.HostBytes})
}

// planner sums buffers into parts, each rounded to the device pool's size
// class (cuda.SizeClass) as the pool will.
type planner struct {
	bytes map[string]int64
	// temporaries (allocated and freed inside a kernel call) stay cached
	// by the pool: each size class counts once, at the most blocks of it
	// ever alive together
	temp map[int64]int
	// late: recording the classes of the buffers allocated after a bf16
	// teacher's upload (its engine's and its own), which take over the
	// cached staging block when they share its class
	late      bool
	lateClass map[int64]bool
	// after (when not nil): the classes of every buffer allocated after
	// the student's bf16 upload
	after map[int64]bool
}

func (p *planner) f32(part string, n int64, count int) {
	if n > 0 && count > 0 {
		p.bytes[part] += int64(count) * cuda.SizeClass(4*n)
		if p.late {
			p.lateClass[cuda.SizeClass(4*n)] = true
		}
		if p.after != nil {
			p.after[cuda.SizeClass(4*n)] = true
		}
	}
}

// bf16 is a buffer of n bf16 values (cuda.Device.AllocBF16).
func (p *planner) bf16(part string, n int64, count int) { p.f32(part, (n+1)/2, count) }

func (p *planner) tempF32(n int64, alive int) {
	if n > 0 {
		c := cuda.SizeClass(4 * n)
		p.temp[c] = max(p.temp[c], alive)
	}
}

// plan constants of the device engine (package gpu)
const (
	planBF16Align   = 128     // a bf16 weight store aligns each tensor to 128 values
	planBF16Chunk   = 1 << 21 // the f32 staging buffer of a bf16 weight upload
	planNormRows    = 128     // rows per block of a norm's weight-gradient reduction
	planSumSqFloats = 2       // the float64 accumulator of the gradient norm
	planOffloadHost = 1 << 22 // values per transfer of optimizer offload (gpu.offloadChunk)
)

// NewPlan is the device memory per GPU of a distillation (or training) run
// on the CUDA engine, by part. It counts every buffer the engine allocates
// from the device pool, each rounded up to the pool's size class, so it
// can be checked against the pool's measured peak; the CUDA context and
// cuBLAS's own workspace (about 0.5–1 GB, outside the pool) come on top.
// With P the student's parameters, N the world and s(x) = x/N when
// sharded, else x:
//
//   - teacher weights: 4 B per parameter in f32; in bf16 2 B per matrix
//     parameter (a bf16-only store) and 4 B per norm parameter.
//   - student weights: f32: the f32 weights, 4P (they are the master
//     copy); bf16: the bf16 copy the products read, 2P.
//   - gradients: f32, 4P, twice that when a step accumulates
//     micro-batches; in bf16 without --zero the matrices' gradients are
//     bf16 (2 B, each tensor at a 128-value boundary) and the norms',
//     biases' and the embedding's f32 (4 B), the sum likewise; in bf16
//     under --zero 1 that arena once (each micro-batch's is reduced to
//     the owners) and the shard's sum. Under --zero 2 the shard's sum and
//     the buckets the backward pass reduces from (planBuckets): V·H for
//     the head and then the embedding, one layer's parameters, the final
//     norm's, 4 B each in f32; in bf16 2 B for the [V, H] bucket (plus the
//     embedding's two [B·T] id maps) and the layer's matrices, 4 B for the
//     rest. The shard's sum is s(4P) where micro-batches accumulate or
//     the gradients are f32; with bf16 gradients and one micro-batch per
//     GPU it is the bf16 reduction's copy: 2 B per bf16 gradient element
//     of the shard, 4 B per other, for the largest of the N shards
//     (planShardSum).
//   - master weights and moments: AdamW's two f32 moments, s(8P) under
//     --zero ≥ 1, plus in bf16 the f32 master weights, s(4P).
//   - activations: the residual stream entering each layer (L+1 of
//     [B·T, H], f32 in both precisions, as Megatron's
//     --fp32-residual-connection). f32 without recomputation: per layer
//     the stream after attention, both norm outputs (with their
//     statistics), q|k|v, the attention output, the MLP's input products
//     and its activation, and the attention probabilities [B, heads, T,
//     T]. bf16 without recomputation: one f32 set of those, shared by the
//     layers, and per layer the norms' f32 statistics and bf16 copies of
//     what the backward pass reads: the products' inputs (both norm
//     outputs, the attention output, the MLP activation), q|k|v, the MLP's
//     input products, the stream after attention and the probabilities.
//     With --recompute one layer's set, whose attention runs a sequence
//     and a KV group at a time (probabilities [heads/KV heads, T, T],
//     recomputed for the backward pass), in bf16 with bf16 copies of its
//     products' inputs. Then the final norm's output (and its bf16 copy),
//     the backward pass's gradient scratch, and the teacher's inference
//     buffers (one layer's, shared by all layers).
//   - logit chunks: the student's and the teacher's logits of one chunk
//     [chunk, V] (f32), a copy when several loss terms read them, the
//     bf16 copy of their gradient in bf16, and the teacher's top-k.
//   - workspace: the temporaries kernels allocate (attention backward's
//     [KV heads, T, T] scores, [T, T] under --recompute, the norms' column sums, the gradient norm's
//     accumulator, a bf16 teacher upload's 8 MiB staging buffer), each
//     size once as the pool keeps it cached.
//
// The world and --zero enter only through s(·) and the buckets: activations and logits
// are per micro-batch on every rank. --zero 1 shards the moments (and in
// bf16 the f32 master weights: the forward reads the bf16 copy); --zero 2
// also the gradient, each bucket going to its owners as the backward pass
// produces it (gpu.Engine.SetGradSink), bf16 gradients as bf16. In bf16 under --zero the student's
// matrices are then stored only in bf16 (with its norms in f32, one
// allocation as the teacher's) and the weights are gathered through an
// f32 staging chunk of min(P, 2²¹) values; the upload's staging stays
// cached unless a later buffer of its class reuses it. 2-rank --zero 2
// runs are calibrated too, in f32 and bf16 (with and without
// accumulation), and a bf16 --zero 1 run. With optimizer offload (bf16,
// --zero 0) the master weights and moments leave the device for the
// host (Plan.HostBytes: 12P plus a transfer chunk's scratch), the
// student's matrices are stored only in bf16 as under --zero, and the
// gradients are the bf16 ones above. Qwen3's q/k-norm
// buffers are not counted (a small part of one layer's activations).
func NewPlan(c PlanConfig) (Plan, error) {
	if c.Student == nil {
		return Plan{}, fmt.Errorf("plan: no student config")
	}
	if c.Seq <= 0 || c.Batch <= 0 {
		return Plan{}, fmt.Errorf("plan: sequence length %d and micro-batch %d must be positive", c.Seq, c.Batch)
	}
	world := max(c.World, 1)
	if c.Zero < 0 || c.Zero > 2 {
		return Plan{}, fmt.Errorf("plan: --zero %d: want 0, 1 or 2", c.Zero)
	}
	if c.Zero > 0 && world == 1 {
		return Plan{}, fmt.Errorf("plan: --zero %d shards over the world: it needs a world size above 1", c.Zero)
	}
	bf16, err := ParsePrecision(c.Precision)
	if err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	if c.LogitChunk < 0 {
		return Plan{}, fmt.Errorf("plan: logit chunk %d must be ≥ 0", c.LogitChunk)
	}
	if c.Offload && (!bf16 || c.Zero != 0) {
		return Plan{}, fmt.Errorf("plan: optimizer offload needs bf16 and --zero 0 (the host keeps every master weight and moment)")
	}
	if err := c.Losses.Validate(); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	if c.Losses.NeedsTeacher() && c.Teacher == nil {
		return Plan{}, fmt.Errorf("plan: the KL losses need a teacher config")
	}
	if len(c.Losses.Intermediate) > 0 {
		return Plan{}, fmt.Errorf("plan: the intermediate-state loss is not modelled")
	}
	if c.Teacher != nil && c.Teacher.VocabSize != c.Student.VocabSize {
		return Plan{}, fmt.Errorf("plan: teacher vocabulary %d differs from the student's %d", c.Teacher.VocabSize, c.Student.VocabSize)
	}
	teacher := c.Teacher
	if !c.Losses.NeedsTeacher() {
		teacher = nil
	}
	p := &planner{bytes: map[string]int64{}, temp: map[int64]int{}, lateClass: map[int64]bool{}}
	s := c.Student
	rows := int64(c.Batch) * int64(c.Seq)
	T := int64(c.Seq)
	chunk := rows
	if c.LogitChunk > 0 && int64(c.LogitChunk) < rows {
		chunk = int64(c.LogitChunk)
	}
	V := int64(s.VocabSize)
	shard := func(n int64, on bool) int64 {
		if on {
			return (n + int64(world) - 1) / int64(world)
		}
		return n
	}

	// student: weights, gradients, moments
	P := planParams(s)
	// the f32 masters sharded (or on the host), the matrices only in bf16
	masters := bf16 && (c.Zero >= 1 || c.Offload)
	var studentStage int64
	switch {
	case masters:
		// one allocation: the norms' f32 and the matrices' bf16 store
		f32n, bfn, big := planStore(s)
		p.f32(PartStudentWeights, planStoreFloats(f32n, bfn), 1)
		studentStage = min(big, planBF16Chunk)
		p.after = map[int64]bool{}
	case bf16:
		p.bf16(PartStudentWeights, P, 1)
		p.f32(PartOptimizer, P, 1) // f32 master
	default:
		p.f32(PartStudentWeights, P, 1)
	}
	p.late = true // the engine's buffers come after the models'
	switch {
	case bf16 && c.Zero <= 1:
		// bf16 gradients of the matrices (gpu/bf16grad.go), f32 for the
		// rest; without ZeRO the micro-batch sum likewise (ZeRO 1 sums
		// them on the shard)
		gf, gb := planGradSplit(s)
		n := 1
		if c.Accum > 1 && c.Zero == 0 {
			n = 2
		}
		p.f32(PartGradients, gf, n)
		p.bf16(PartGradients, gb, n)
	case c.Zero < 2:
		p.f32(PartGradients, P, 1)
		if c.Accum > 1 {
			p.f32(PartGradients, P, 1)
		}
	}
	if !c.Offload {
		p.f32(PartOptimizer, shard(P, c.Zero >= 1), 2)
	}
	if masters && !c.Offload {
		p.f32(PartOptimizer, shard(P, true), 1)        // the shard's f32 master weights
		p.f32(PartWorkspace, min(P, planBF16Chunk), 1) // the gather's staging chunk
	}
	if c.Zero >= 2 || (bf16 && c.Zero == 1) {
		// the shard's gradient sum (the engine reduces its gradients into
		// it: gpu.Engine.SetGradSink)
		planShardSum(p, s, world, c.Zero, bf16 && c.Accum <= 1)
	}
	if c.Zero >= 2 {
		// the buckets the backward pass fills and reduces
		big, layer, layerB, rest := planBuckets(s, bf16)
		if bf16 {
			p.bf16(PartGradients, big, 1)
			p.f32(PartGradients, rows, 2) // the embedding's distinct ids and each row's index among them
		} else {
			p.f32(PartGradients, big, 1)
		}
		p.f32(PartGradients, layer, 1)
		p.bf16(PartGradients, layerB, 1)
		p.f32(PartGradients, rest, 1)
	}

	// student activations (gpu.Model with Train) and the engine's scratch
	H, F, L := int64(s.HiddenSize), int64(s.IntermediateSize), s.NumLayers
	QD, KVD := int64(s.QDim()), int64(s.KVDim())
	W := QD + 2*KVD
	uw := F
	if s.GatedMLP() {
		uw = 2 * F
	}
	per := L // layers with their own statistics (and bf16 product inputs)
	if c.Recompute {
		per = 1
	}
	// f32 working sets: one per layer in f32, one shared by every layer
	// under recomputation or in bf16 (which keeps bf16 stores per layer)
	packed := bf16 && !c.Recompute
	sets := per
	if packed {
		sets = 1
	}
	A := PartActivations
	p.late = false
	p.f32(A, rows*H, L+1) // residual stream entering each layer (and leaving the last)
	p.f32(A, rows*H, 3*sets)
	p.f32(A, rows*W, sets)
	p.f32(A, rows*QD, sets)
	p.f32(A, rows*uw, sets)
	p.f32(A, rows*F, sets)
	p.f32(A, rows, 4*per)
	groupScores := int64(s.NumHeads/s.NumKVHeads) * T * T // one sequence's heads of one KV group
	probs := int64(c.Batch) * int64(s.NumHeads) * T * T
	if c.Recompute {
		p.f32(A, groupScores, 1) // attention a (sequence, KV group) at a time
	} else {
		p.f32(A, probs, sets)
	}
	p.f32(A, rows*H, 1) // final norm
	p.f32(A, rows, 2)
	p.f32(A, rows, 3) // ids, targets, positions
	if rot := int64(s.RotaryDim()); rot > 0 {
		p.f32(A, T*rot/2, 2)
	}
	if bf16 {
		p.bf16(A, rows*H, 2*per)
		p.bf16(A, rows*QD, per)
		p.bf16(A, rows*F, per)
		p.bf16(A, rows*H, 1)
	}
	if packed {
		// what each layer's backward reads besides the products' inputs
		p.bf16(A, rows*H, L) // the stream after attention
		p.bf16(A, rows*W, L)
		p.bf16(A, rows*uw, L)
		p.bf16(A, probs, L)
	}
	p.late = true
	// backward scratch
	p.f32(A, rows*H, 2)
	p.f32(A, rows*F, 1)
	p.f32(A, rows*uw, 1)
	p.f32(A, rows*QD, 1)
	p.f32(A, rows*W, 1)
	p.f32(A, rows, 1) // per-row loss
	if bf16 {
		p.bf16(A, rows*H, 1)
		p.bf16(A, rows*uw, 1)
		p.bf16(A, rows*W, 1)
	}

	// logits
	LC := PartLogitChunks
	p.late = false
	p.f32(LC, chunk*V, 1) // the student's, allocated with its activations
	p.late = true
	if len(c.Losses.TrainTerms()) > 1 {
		p.f32(LC, chunk*V, 1)
	}
	if bf16 {
		p.bf16(LC, chunk*V, 1)
	}
	if k := int64(c.Losses.TopK); k > 0 && teacher != nil {
		p.f32(LC, rows*k, 2)
	}

	// workspace: attention backward's scores of one call's KV heads, the
	// norms' column-sum blocks, the gradient norm's accumulator
	if c.Recompute {
		p.tempF32(T*T, 1)
	} else {
		p.tempF32(int64(s.NumKVHeads)*T*T, 1)
	}
	if chunks := (rows + planNormRows - 1) / planNormRows; chunks > 1 {
		alive := 1
		if s.Family == model.Nemotron {
			alive = 2 // LayerNorm1P: weight and bias
		}
		p.tempF32(chunks*H, alive)
	}
	p.tempF32(planSumSqFloats, 1)

	var tp int64
	if teacher != nil {
		tp = planTeacher(p, teacher, c, bf16, rows, chunk)
	}
	// the student's bf16 upload staging stays cached unless a later
	// buffer of its class takes it over
	if studentStage > 0 && !p.after[cuda.SizeClass(4*studentStage)] {
		p.tempF32(studentStage, 1)
	}
	for cls, n := range p.temp {
		p.bytes[PartWorkspace] += cls * int64(n)
	}
	out := Plan{StudentParams: P, TeacherParams: tp}
	if c.Offload {
		out.HostBytes = 12*P + 8*min(P, planOffloadHost) // masters, moments; a chunk's gradient (f32 and bits) and weight bits
	}
	for _, name := range []string{PartTeacherWeights, PartStudentWeights, PartGradients, PartOptimizer, PartActivations, PartLogitChunks, PartWorkspace} {
		out.Parts = append(out.Parts, PlanPart{name, p.bytes[name]})
		out.PerGPUBytes += p.bytes[name]
	}
	return out, nil
}

// planTeacher adds the frozen teacher (gpu.Model without Train, its
// matrices stored only in bf16 in bf16 runs) and returns its parameters.
func planTeacher(p *planner, t *model.Config, c PlanConfig, bf16 bool, rows, chunk int64) int64 {
	var total int64
	planTensors(t, func(ti model.TensorInfo, times int64) { total += times * int64(ti.NumElements()) })
	p.late = false
	if bf16 {
		f32n, bfn, big := planStore(t)
		p.f32(PartTeacherWeights, planStoreFloats(f32n, bfn), 1)
		defer func() {
			if stage := min(big, planBF16Chunk); !p.lateClass[cuda.SizeClass(4*stage)] {
				p.tempF32(stage, 1)
			}
		}()
	} else {
		p.f32(PartTeacherWeights, total, 1)
	}
	p.late = true
	H, F := int64(t.HiddenSize), int64(t.IntermediateSize)
	W := int64(t.QDim() + 2*t.KVDim())
	uw := F
	if t.GatedMLP() {
		uw = 2 * F
	}
	T := int64(c.Seq)
	A := PartActivations
	p.f32(A, rows*H, 3) // the stream's two buffers and the norm output
	p.f32(A, rows*W, 1)
	p.f32(A, rows*int64(t.QDim()), 1)
	p.f32(A, rows*uw, 1)
	p.f32(A, int64(t.NumHeads/t.NumKVHeads)*T*T, 1) // one sequence's scores of one KV group at a time
	p.f32(A, rows, 3)
	if rot := int64(t.RotaryDim()); rot > 0 {
		p.f32(A, T*rot/2, 2)
	}
	if bf16 {
		p.bf16(A, rows*H, 1)
		p.bf16(A, rows*int64(t.QDim()), 1)
		p.bf16(A, rows*F, 1)
	}
	p.f32(PartLogitChunks, chunk*int64(t.VocabSize), 1)
	return total
}

// planStore is a model's weights as a bf16 store holds them (gpu
// Options.WeightsBF16): the f32 parameters (norms, biases; an embedding of
// odd width), the bf16 ones with each tensor aligned, and the largest
// bf16 tensor (its upload's staging).
func planStore(t *model.Config) (f32n, bfn, big int64) {
	planTensors(t, func(ti model.TensorInfo, times int64) {
		n := int64(ti.NumElements())
		if len(ti.Shape) == 2 && (ti.Name != model.EmbedTensor || t.HiddenSize%2 == 0) {
			bfn += times * planAligned(n)
			big = max(big, n)
			return
		}
		if t.TieWordEmbeddings && ti.Name == model.EmbedTensor {
			bfn += times * planAligned(n)
		}
		f32n += times * n
	})
	return f32n, bfn, big
}

// planStoreFloats is the f32 values of a bf16 store's one allocation:
// its f32 parameters, padded to the bf16 alignment, then its bf16 ones.
func planStoreFloats(f32n, bfn int64) int64 {
	half := int64(planBF16Align / 2)
	return (f32n+half-1)/half*half + (bfn+1)/2
}

// planAligned is n bf16 values rounded up to a store's tensor alignment.
func planAligned(n int64) int64 { return (n + planBF16Align - 1) / planBF16Align * planBF16Align }

// planTensors calls f for each tensor of one layer of cfg and each outside
// the layers, with how many of it the model holds.
func planTensors(cfg *model.Config, f func(ti model.TensorInfo, times int64)) {
	one := *cfg
	one.NumLayers = 1
	for _, ti := range append(model.ExpectedTensors(&one), model.OptionalTensors(&one)...) {
		times := int64(1)
		if strings.HasPrefix(ti.Name, "model.layers.") {
			times = int64(cfg.NumLayers)
		}
		f(ti, times)
	}
}

// planGradSplit is the gradient arenas' sizes of a bf16 engine without
// ZeRO: f32 values (norms, biases, the embedding's scatter-add) and bf16
// ones (the other matrices, each at a 128-value boundary).
func planGradSplit(t *model.Config) (f32n, bfn int64) {
	planTensors(t, func(ti model.TensorInfo, times int64) {
		n := int64(ti.NumElements())
		if len(ti.Shape) == 2 && ti.Name != model.EmbedTensor {
			bfn += times * planAligned(n)
			return
		}
		f32n += times * n
	})
	return f32n, bfn
}

// planBuckets are the sizes of ZeRO 2's gradient buckets: the head's or
// embedding's [V, H] (bf16 with bf16 gradients), one layer's tensors (with
// bf16 gradients its matrices in bf16, layerB, each at a 128-value
// boundary, and its norms and biases in f32) and the other tensors
// outside the layers (the final norm).
func planBuckets(cfg *model.Config, bf16 bool) (big, layer, layerB, rest int64) {
	one := *cfg
	one.NumLayers = 1
	for _, ti := range append(model.ExpectedTensors(&one), model.OptionalTensors(&one)...) {
		n := int64(ti.NumElements())
		switch {
		case strings.HasPrefix(ti.Name, "model.layers.") && bf16 && len(ti.Shape) == 2:
			layerB += planAligned(n)
		case strings.HasPrefix(ti.Name, "model.layers."):
			layer += n
		case ti.Name == model.EmbedTensor || ti.Name == "lm_head.weight":
			big = max(big, n)
		default:
			rest += n
		}
	}
	return big, layer, layerB, rest
}

// planShardSum adds the largest shard's gradient sum of the world's ranks
// (gpu shard.g, or gB and gF): f32, one value per arena element of the
// shard, unless mixed (bf16 gradients, one micro-batch per rank), where
// the elements of bf16 gradients (the matrices' but the embedding's under
// ZeRO 1; every matrix's under ZeRO 2) are summed in bf16 and the others
// in f32, each packed in its buffer.
func planShardSum(p *planner, cfg *model.Config, world, zero int, mixed bool) {
	ts := append(model.ExpectedTensors(cfg), model.OptionalTensors(cfg)...)
	var n int64
	for _, ti := range ts {
		n += int64(ti.NumElements())
	}
	var bestF, bestB, best int64
	for r := range world {
		lo, hi := comm.Range(int(n), world, r)
		nF, nB := int64(hi-lo), int64(0)
		if mixed {
			nF = 0
			var at int64
			for _, ti := range ts {
				k := int64(ti.NumElements())
				in := min(at+k, int64(hi)) - max(at, int64(lo))
				at += k
				if in <= 0 {
					continue
				}
				bf := len(ti.Shape) == 2 && ti.Name != model.EmbedTensor
				if zero >= 2 {
					bf = len(ti.Shape) == 2 && (strings.HasPrefix(ti.Name, "model.layers.") || ti.Name == model.EmbedTensor || ti.Name == "lm_head.weight")
				}
				if bf {
					nB += in
				} else {
					nF += in
				}
			}
		}
		var b int64
		if nF > 0 {
			b += cuda.SizeClass(4 * nF)
		}
		if nB > 0 {
			b += cuda.SizeClass(4 * ((nB + 1) / 2))
		}
		if b > best {
			best, bestF, bestB = b, nF, nB
		}
	}
	p.f32(PartGradients, bestF, 1)
	p.bf16(PartGradients, bestB, 1)
}

// planParams counts cfg's parameters tensor by tensor as the engine's
// arena holds them (with nemotron's norm biases).
func planParams(cfg *model.Config) int64 { return cfg.ParamCounts().Total }

// PlanModelConfig reads the architecture a plan needs from spec: a
// config.json path, a checkpoint directory holding one, or FAMILY:SIZE, a
// named shape of model.InitSizes in that family (e.g.
// nemotron:minitron-8b, llama:llama-3.1-8b) for planning without files.
func PlanModelConfig(spec string) (*model.Config, error) {
	if fam, size, ok := strings.Cut(spec, ":"); ok && !strings.ContainsAny(spec, `/\`) {
		if _, err := os.Stat(spec); err != nil {
			cfg, _, err := model.InitConfig(model.InitOptions{Family: model.Family(fam), Size: size})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", spec, err)
			}
			return cfg, nil
		}
	}
	return model.LoadConfig(spec)
}
