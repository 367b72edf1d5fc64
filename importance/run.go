package importance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// Config is one scoring run, `minitron importance` as a function: a
// checkpoint directory and a dataset prefix in, a scores file out.
type Config struct {
	ModelDir string // checkpoint directory
	Data     string // dataset prefix: samples from PREFIX_train (or a bare PREFIX)
	Out      string // scores file to write
	// Overwrite replaces an existing Out; without it an existing file is
	// refused before any work.
	Overwrite bool

	Samples int    // calibration samples (≥ 1)
	SeqLen  int    // tokens per sample (≥ 2, at most max_position_embeddings)
	Batch   int    // samples per forward pass (≥ 1)
	Seed    uint64 // sampling seed; the layer-drop losses' _val samples use Seed+1

	Aggregation Aggregation
	MLPPoint    string // MLPPre or MLPPost; "" is MLPPost
	BI          bool   // Block Importance
	Loss        bool   // layer-drop losses
	// LossSamples caps the samples of the layer-drop losses; 0 means as
	// many as Samples.
	LossSamples int
	// LossOnCalibration measures the layer-drop losses on the calibration
	// samples even when PREFIX_val exists (otherwise they are validation
	// losses, on LossSamples samples of PREFIX_val when there is one).
	LossOnCalibration bool
	// BlockK are the sizes of contiguous blocks of layers to find; nil
	// means one size, half the layers (none for a one-layer model), and an
	// empty non-nil slice none.
	BlockK []int

	// Weights is how the host holds the weights; WeightsAuto on cuda
	// streams them (the host only reads each weight once, to upload it).
	Weights model.WeightMode
	Device  device.Kind
	NoTF32  bool // cuda: full f32 matrix products
	BF16    bool // cuda: weight matrices in bf16 only

	// Shard and Shards score part Shard (0-based) of Shards of the
	// calibration samples (and of the layer-drop losses' samples) and
	// write a partial statistics file (Partial) to Out instead of scores;
	// MergePartials combines the Shards files. Shards 0 scores everything.
	Shard, Shards int
	// Comm, with more than one rank (a job of bin/minitron-mpi), scores
	// shard Rank of Size on each rank and rank 0 merges them and writes
	// the scores to Out.
	Comm comm.Communicator

	// Progress, when set, is called after each forward pass with the
	// passes done and the total.
	Progress func(done, total int64)
	// Version is the minitron version recorded in the scores file; ""
	// takes it from the binary's build information when it has one.
	Version string
}

// Result is what Run wrote.
type Result struct {
	Scores  *Scores  // nil when a shard wrote its Partial
	Partial *Partial // a shard's statistics (Shards, or Comm)
	// Split and LossSplit are the dataset prefixes read for the
	// calibration samples and for the layer-drop losses.
	Split, LossSplit string
	Seconds          float64
}

// check validates what can be checked before anything is opened, so a
// bad setting (or cuda in a CPU build) fails before any work.
func (c *Config) check() error {
	if c.ModelDir == "" || c.Data == "" || c.Out == "" {
		return fmt.Errorf("importance: ModelDir, Data and Out are required")
	}
	// Scores written over the model's config.json or weights destroy the
	// checkpoint, so that is refused even with Overwrite.
	if model.IsCheckpointFile(c.ModelDir, c.Out) {
		return fmt.Errorf("importance: Out %s is a file of the checkpoint %s (ModelDir); write the scores elsewhere", c.Out, c.ModelDir)
	}
	if _, err := os.Lstat(c.Out); err == nil && !c.Overwrite {
		return fmt.Errorf("importance: Out %s %w; set Overwrite to replace it", c.Out, data.ErrOutputExists)
	}
	if err := c.Aggregation.Validate(); err != nil {
		return fmt.Errorf("importance: %w", err)
	}
	if c.MLPPoint == "" {
		c.MLPPoint = MLPPost
	}
	if c.MLPPoint != MLPPre && c.MLPPoint != MLPPost {
		return fmt.Errorf("importance: MLPPoint %q: want pre or post", c.MLPPoint)
	}
	o := Options{Device: c.Device, BF16: c.BF16}
	if err := o.checkDevice(); err != nil {
		return err
	}
	c.Device = o.Device
	if c.Samples < 1 || c.SeqLen < 2 || c.Batch < 1 {
		return fmt.Errorf("importance: need Samples ≥ 1, SeqLen ≥ 2 and Batch ≥ 1, got %d, %d and %d", c.Samples, c.SeqLen, c.Batch)
	}
	if c.Comm != nil && c.Comm.Size() > 1 {
		if c.Shards != 0 {
			return fmt.Errorf("importance: Shard %d/%d in a job of %d ranks: the ranks are the shards; give one or the other", c.Shard, c.Shards, c.Comm.Size())
		}
		c.Shard, c.Shards = c.Comm.Rank(), c.Comm.Size()
	}
	if c.Shards < 0 || (c.Shards > 0 && (c.Shard < 0 || c.Shard >= c.Shards)) {
		return fmt.Errorf("importance: shard %d of %d: want 0 ≤ shard < shards", c.Shard, c.Shards)
	}
	if c.Shards > c.Samples {
		return fmt.Errorf("importance: %d shards of %d samples: each shard needs at least one", c.Shards, c.Samples)
	}
	return nil
}

// Run scores the model in c.ModelDir on calibration samples of c.Data and
// writes the scores file, which records the model's identity, the data,
// the aggregation and where and by what it was computed (Provenance).
func Run(ctx context.Context, c Config) (*Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	wm := c.Weights
	if c.Device.IsCUDA() && wm == model.WeightsAuto {
		wm = model.WeightsStreaming
	}
	ck, err := model.OpenCheckpoint(c.ModelDir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	cfg := ck.Config()
	if c.SeqLen > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("importance: SeqLen %d exceeds the model's max_position_embeddings %d", c.SeqLen, cfg.MaxPositionEmbeddings)
	}
	blockK := c.BlockK
	if blockK == nil && cfg.NumLayers >= 2 {
		blockK = []int{cfg.NumLayers / 2}
	}
	id, err := ModelIdentity(cfg, ck)
	if err != nil {
		return nil, err
	}
	ds, split, err := OpenSplit(c.Data, "train")
	if err != nil {
		return nil, err
	}
	samples, err := Samples(ds, c.Samples, c.SeqLen, c.Seed, cfg.VocabSize)
	ds.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", split, err)
	}
	// Layer-drop losses are validation losses: measured on the _val split
	// when there is one, else on the calibration samples.
	var lossData [][]int
	lossSplit := split
	if c.Loss && !c.LossOnCalibration {
		if vds, vname, err := OpenSplit(c.Data, "val"); err == nil {
			n := c.LossSamples
			if n <= 0 {
				n = c.Samples
			}
			lossData, err = Samples(vds, n, c.SeqLen, c.Seed+1, cfg.VocabSize)
			vds.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vname, err)
			}
			lossSplit = vname
		}
	}
	m, err := model.New(cfg, ck, model.Options{Weights: wm})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	start := time.Now()
	opt := Options{
		Aggregation: c.Aggregation, MLPPoint: c.MLPPoint, Batch: c.Batch, BI: c.BI, Loss: c.Loss,
		LossSamples: c.LossSamples, LossData: lossData, BlockK: blockK, Progress: c.Progress,
		Device: c.Device, NoTF32: c.NoTF32, BF16: c.BF16,
	}
	if c.Shards > 0 {
		return c.runShard(ctx, m, id, samples, opt, split, lossSplit, start)
	}
	sc, err := Compute(ctx, m, samples, opt)
	if err != nil {
		return nil, err
	}
	sc.Model = id
	sc.Data.Prefix = c.Data
	sc.Data.Split = filepath.Base(split)
	sc.Data.Seed = int64(c.Seed)
	if sc.Depth != nil && c.Loss {
		sc.Depth.LossData = filepath.Base(lossSplit)
	}
	sc.Provenance = c.provenance()
	if err := sc.Save(c.Out); err != nil {
		return nil, err
	}
	return &Result{Scores: sc, Split: split, LossSplit: lossSplit, Seconds: time.Since(start).Seconds()}, nil
}

// provenance records how c scored (in a scores file or a shard's partial).
func (c *Config) provenance() *Provenance {
	version := c.Version
	if version == "" {
		version = buildVersion()
	}
	return &Provenance{ModelDir: c.ModelDir, Device: c.Device.String(), Batch: c.Batch,
		NoTF32: c.Device.IsCUDA() && c.NoTF32, BF16: c.BF16, Minitron: version}
}

// modulePath is this module's import path, to find its version among a
// binary's dependencies.
const modulePath = "github.com/minitron-dev/minitron"

// buildVersion is minitron's version as the Go toolchain recorded it: the
// module version when minitron is a dependency, else the VCS revision of
// a build from a checkout ("" when neither is known, as in tests).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath && d.Version != "" && d.Version != "(devel)" {
			return d.Version
		}
	}
	if bi.Main.Path != modulePath {
		return ""
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return "devel " + strings.TrimSpace(rev[:min(12, len(rev))]) + dirty
}
