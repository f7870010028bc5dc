package projection

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portledger/portledger/ledger"
)

// replayDirPattern names the temporary folders of Replay.
const replayDirPattern = ".replay-*"

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// Verify compares the rebuilt files with the ones in place and leaves
	// the files in place untouched.
	Verify bool
	// Progress, if set, is called about every 50,000 events and once at
	// the end with the events done and the events in the log.
	Progress func(done, total uint64)
}

// ReplayResult says what Replay did.
type ReplayResult struct {
	// Events is the number of events replayed.
	Events uint64
	// Files are the paths of the rebuilt files in the data directory:
	// port_registry.json, then the JSONL files oldest first.
	Files []string
	// Matched reports, with Verify, that every file in place is the same as
	// its rebuilt version and that no file is missing or extra.
	Matched bool
	// Diffs lists, with Verify, the first differing line of each file that
	// does not match, in the order of Files, extra files last.
	Diffs []FileDiff
}

// FileDiff is the first line where a file in place differs from the file
// that the log gives.
type FileDiff struct {
	File string // path of the file in the data directory
	Line int    // 1-based; 0 when the file is missing on one side
	Want string // the line as rebuilt from the log, without its newline; "" past the end
	Got  string // the line in place; "" past the end
}

// Replay rebuilds port_registry.json and every JSONL file from the log, into
// a temporary folder inside the data directory. Without Verify it then moves
// them into place, replacing the old files and removing JSONL files that no
// longer match any day of the log; with Verify it compares the rebuilt files
// with the files in place, line by line, and changes nothing. The same log
// always gives byte-identical files.
//
// Replay writes the files of the data directory, so no Files may be
// writing them at the same time; a Files opened before a replay must be
// opened again after it.
func Replay(layout ledger.Layout, log *ledger.Log, opts ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	total, err := log.Count()
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if err := os.MkdirAll(layout.Dir, 0o700); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	// A replay that crashed left its folder behind; whoever holds the log
	// is the only writer, so any such folder is stale.
	stale, _ := filepath.Glob(filepath.Join(layout.Dir, replayDirPattern))
	for _, dir := range stale {
		if err := os.RemoveAll(dir); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(layout.Dir, replayDirPattern)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	defer os.RemoveAll(tmp)
	built := ledger.Layout{Dir: tmp}

	w := newEmptyFiles(built, log)
	var progress func(uint64)
	if opts.Progress != nil {
		progress = func(done uint64) { opts.Progress(done, total) }
	}
	res.Events, err = w.catchUp(progress)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(res.Events, total)
	}

	days, err := dayFiles(built.LogsDir())
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.Files = append(res.Files, layout.Registry())
	for _, name := range days {
		res.Files = append(res.Files, filepath.Join(layout.LogsDir(), name))
	}
	old, err := dayFiles(layout.LogsDir())
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	var extra []string
	for _, name := range old {
		if _, found := slices.BinarySearch(days, name); !found {
			extra = append(extra, name)
		}
	}

	if opts.Verify {
		pairs := [][2]string{{built.Registry(), layout.Registry()}}
		for _, name := range days {
			pairs = append(pairs, [2]string{filepath.Join(built.LogsDir(), name), filepath.Join(layout.LogsDir(), name)})
		}
		for _, name := range extra {
			pairs = append(pairs, [2]string{"", filepath.Join(layout.LogsDir(), name)})
		}
		for _, p := range pairs {
			d, err := compareFiles(p[0], p[1])
			if err != nil {
				return res, fmt.Errorf("replay: verify: %w", err)
			}
			if d != nil {
				res.Diffs = append(res.Diffs, *d)
			}
		}
		res.Matched = len(res.Diffs) == 0
		return res, nil
	}

	if err := install(built, layout, days, extra); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	return res, nil
}

// install moves the rebuilt files into place and removes the extra JSONL
// files, then syncs both folders.
func install(built, layout ledger.Layout, days, extra []string) error {
	logs := layout.LogsDir()
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}
	for _, name := range days {
		if err := os.Rename(filepath.Join(built.LogsDir(), name), filepath.Join(logs, name)); err != nil {
			return err
		}
	}
	for _, name := range extra {
		if err := os.Remove(filepath.Join(logs, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := syncDir(logs); err != nil {
		return err
	}
	regDir := filepath.Dir(layout.Registry())
	if err := os.MkdirAll(regDir, 0o700); err != nil {
		return err
	}
	if err := os.Rename(built.Registry(), layout.Registry()); err != nil {
		return err
	}
	return syncDir(regDir)
}

// compareFiles returns the first line where got differs from want, or nil
// when they are the same. An empty want path stands for a file that should
// not exist; a missing file gives a FileDiff with Line 0.
func compareFiles(want, got string) (*FileDiff, error) {
	wf, werr := openIfExists(want)
	if werr != nil {
		return nil, werr
	}
	gf, gerr := openIfExists(got)
	if gerr != nil {
		closeIf(wf)
		return nil, gerr
	}
	defer closeIf(wf)
	defer closeIf(gf)
	if wf == nil || gf == nil {
		if wf == nil && gf == nil {
			return nil, nil
		}
		d := &FileDiff{File: got}
		if wf != nil {
			d.Want, _ = readLine(bufio.NewReader(wf))
		} else {
			d.Got, _ = readLine(bufio.NewReader(gf))
		}
		return d, nil
	}
	wr, gr := bufio.NewReaderSize(wf, 256<<10), bufio.NewReaderSize(gf, 256<<10)
	for line := 1; ; line++ {
		w, werr := wr.ReadBytes('\n')
		g, gerr := gr.ReadBytes('\n')
		if werr != nil && werr != io.EOF {
			return nil, werr
		}
		if gerr != nil && gerr != io.EOF {
			return nil, gerr
		}
		if !bytes.Equal(w, g) {
			return &FileDiff{File: got, Line: line,
				Want: string(bytes.TrimSuffix(w, []byte("\n"))),
				Got:  string(bytes.TrimSuffix(g, []byte("\n")))}, nil
		}
		if werr == io.EOF || gerr == io.EOF {
			return nil, nil // equal lines, both at their end
		}
	}
}

func openIfExists(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

func closeIf(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// readLine returns the first line of r without its newline.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadBytes('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return string(bytes.TrimSuffix(b, []byte("\n"))), nil
}

// KeepAside renames every file in place that a verifying Replay found to
// differ from the log to "<name>.differed-<UTC time>", next to it, so that a
// rebuild after it destroys no evidence of what the file said. Files missing
// in place have nothing to keep. It returns the new paths.
func KeepAside(diffs []FileDiff, now time.Time) ([]string, error) {
	stamp := now.UTC().Format("20060102T150405Z")
	var kept []string
	for _, d := range diffs {
		if _, err := os.Lstat(d.File); errors.Is(err, os.ErrNotExist) {
			continue
		}
		to := d.File + ".differed-" + stamp
		if _, err := os.Lstat(to); err == nil {
			return kept, fmt.Errorf("keep %s aside: %s already exists", d.File, to)
		}
		if err := os.Rename(d.File, to); err != nil {
			return kept, fmt.Errorf("keep %s aside: %w", d.File, err)
		}
		kept = append(kept, to)
	}
	return kept, nil
}
