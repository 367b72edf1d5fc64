//go:build minitron_cuda || minitron_cudaemu

package importance

import (
	"errors"

	"github.com/minitron-dev/minitron/model"
)

// TEMPORARY (helper C): replaced by the gputrain inference path once
// gputrain.Model.Infer lands.
func cudaBuilt() error { return nil }

func newCUDAPasses(*model.Model, *Collector, Options, int) (passes, error) {
	return nil, errors.New("importance --device cuda: not implemented yet")
}
