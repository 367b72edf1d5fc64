package distill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/minitron-dev/minitron/internal/atomicfile"
)

// truncateMetrics drops the lines of a metrics JSONL file that belong to
// steps after step. A run that crashed after its last checkpoint logged
// steps that the resumed run repeats; without this they would appear twice
// in the file (and in the loss plots). A line that is not JSON (torn by a
// kill mid-write) is dropped too; other lines without a step are kept.
func truncateMetrics(path string, step int) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	dropped := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var v struct {
			Step *int `json:"step"`
		}
		if err := json.Unmarshal(line, &v); err != nil || v.Step != nil && *v.Step > step {
			dropped = true
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !dropped {
		return nil
	}
	return atomicfile.WriteFile(path, out.Bytes(), nil)
}
