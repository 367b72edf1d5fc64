package comm

import (
	"fmt"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		n, size int
		want    []int
		reason  string
	}{
		{10, 3, []int{4, 3, 3}, "the remainder goes to the first ranks"},
		{2, 4, []int{1, 1, 0, 0}, "more ranks than elements: some hold nothing"},
		{8, 1, []int{8}, "a world of one holds everything"},
	}
	for _, c := range cases {
		got := Split(c.n, c.size)
		for r := range got {
			if got[r] != c.want[r] {
				t.Fatalf("Split(%d,%d) = %v, want %v (%s)", c.n, c.size, got, c.want, c.reason)
			}
		}
		if lo, hi := Range(c.n, c.size, c.size-1); hi != c.n || hi-lo != c.want[c.size-1] {
			t.Fatalf("Range(%d,%d,last) = [%d,%d) (%s)", c.n, c.size, lo, hi, c.reason)
		}
	}
}

func ExampleSplit() {
	// 10 elements (a model's parameters) over 3 ranks: rank 1's shard
	fmt.Println(Split(10, 3))
	fmt.Println(Range(10, 3, 1))
	// Output:
	// [4 3 3]
	// 4 7
}

func TestLocalRanks(t *testing.T) {
	for _, k := range []string{"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"} {
		t.Setenv(k, "")
	}
	if n := LocalRanks(); n != 1 {
		t.Fatalf("without a launcher: %d local ranks, want 1", n)
	}
	t.Setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
	if n := LocalRanks(); n != 4 {
		t.Fatalf("mpirun's 4 local ranks read as %d", n)
	}
}

// Without a launcher the world is one rank whatever the build.
func TestWorldWithoutLauncher(t *testing.T) {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"} {
		t.Setenv(k, "")
	}
	if launched() {
		t.Fatal("launched without a launcher's environment")
	}
}

// A world of one (or none) has no other rank to agree with: Agree is err.
func TestAgreeAlone(t *testing.T) {
	e := fmt.Errorf("boom")
	cases := []struct {
		c      Communicator
		err    error
		reason string
	}{
		{nil, e, "no communicator: the error as it is"},
		{nil, nil, "no communicator, no error"},
		{Local{}, e, "a world of one: the error as it is"},
		{Local{}, nil, "a world of one, no error"},
	}
	for _, c := range cases {
		if got := Agree(c.c, c.err); got != c.err {
			t.Errorf("Agree(%T, %v) = %v (%s)", c.c, c.err, got, c.reason)
		}
	}
}

func TestCheckedOffsets(t *testing.T) {
	cases := []struct {
		counts  []int
		size, n int
		ok      bool
		reason  string
	}{
		{[]int{4, 3, 3}, 3, 10, true, "one segment per rank, covering the buffer"},
		{[]int{4, 3}, 3, 7, false, "a rank without a count"},
		{[]int{4, 3, 2}, 3, 10, false, "segments short of the buffer"},
	}
	for _, c := range cases {
		off, err := CheckedOffsets(c.counts, c.size, c.n)
		if (err == nil) != c.ok || (c.ok && off[c.size] != c.n) {
			t.Errorf("CheckedOffsets(%v, %d, %d) = %v, %v (%s)", c.counts, c.size, c.n, off, err, c.reason)
		}
	}
}
