// Package tbevents writes TensorBoard scalar event files: TFRecord framing
// (length, masked CRC-32C of the length, data, masked CRC-32C of the data)
// around Event protocol buffers (wall_time 1, step 2, file_version 3,
// summary 5 holding Values of tag 1 and simple_value 2), encoded with the
// protobuf module's wire encoder.
package tbevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Writer appends events to one file, events.out.tfevents.<unix>.<host>.<pid>.<n>, in
// a directory TensorBoard is pointed at.
type Writer struct {
	f    *os.File
	path string
}

// Create starts a new event file in dir (made if missing) with the
// file-version event TensorBoard expects first.
func Create(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	now := time.Now()
	// TensorFlow's name, with a counter for several files a second from one
	// process (a run resumed in the same process)
	var f *os.File
	var path string
	var err error
	for i := 0; i < 1000; i++ {
		path = filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s.%d.%d", now.Unix(), host, os.Getpid(), i))
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644); !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, path: path}
	var ev []byte
	ev = protowire.AppendTag(ev, 1, protowire.Fixed64Type)
	ev = protowire.AppendFixed64(ev, math.Float64bits(wallTime(now)))
	ev = protowire.AppendTag(ev, 3, protowire.BytesType)
	ev = protowire.AppendString(ev, "brain.Event:2")
	if err := w.record(ev); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Path is the event file's path.
func (w *Writer) Path() string { return w.path }

// Scalars writes one event at step holding a scalar per tag (in tag order).
func (w *Writer) Scalars(step int64, values map[string]float64) error {
	tags := make([]string, 0, len(values))
	for t := range values {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	var sum []byte
	for _, t := range tags {
		var v []byte
		v = protowire.AppendTag(v, 1, protowire.BytesType)
		v = protowire.AppendString(v, t)
		v = protowire.AppendTag(v, 2, protowire.Fixed32Type)
		v = protowire.AppendFixed32(v, math.Float32bits(float32(values[t])))
		sum = protowire.AppendTag(sum, 1, protowire.BytesType)
		sum = protowire.AppendBytes(sum, v)
	}
	var ev []byte
	ev = protowire.AppendTag(ev, 1, protowire.Fixed64Type)
	ev = protowire.AppendFixed64(ev, math.Float64bits(wallTime(time.Now())))
	ev = protowire.AppendTag(ev, 2, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(step))
	ev = protowire.AppendTag(ev, 5, protowire.BytesType)
	ev = protowire.AppendBytes(ev, sum)
	return w.record(ev)
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// masked is TFRecord's masked CRC-32C.
func masked(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// record writes one TFRecord in a single write, so a kill cannot leave half
// of its framing without the rest of the file being readable up to it.
func (w *Writer) record(data []byte) error {
	buf := make([]byte, 0, 16+len(data))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(data)))
	buf = binary.LittleEndian.AppendUint32(buf, masked(buf[:8]))
	buf = append(buf, data...)
	buf = binary.LittleEndian.AppendUint32(buf, masked(data))
	if _, err := w.f.Write(buf); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	return nil
}

func wallTime(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
