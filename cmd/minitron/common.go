package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/model"
)

// loadModel opens a checkpoint with the --weights mode (auto, resident or
// streaming) that several commands take.
func loadModel(dir, weights string) (*model.Model, error) {
	mode, err := model.ParseWeightMode(weights)
	if err != nil {
		return nil, err
	}
	return model.Load(dir, model.Options{Weights: mode})
}

// printJSON writes v as one line of JSON, the --json output of the commands.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
