package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

func runImport(ctx context.Context, e *env, args []string) error {
	var c common
	var from string
	fs := newFlags(e, "import", "import --from DIR [--json]", `
Import the history of the original Python port manager from its root folder:
databases/port_registry/port_registry.json and logs/port_manager/*.jsonl.
Each line becomes an event at its original time, marked with its file and
line; the old registry's live allocations become allocations when no later
release says otherwise and the port is free now. Importing the same files
again imports nothing twice. Malformed lines are reported and skipped;
nothing already in the ledger changes. port_registry.json and the JSONL
logs of this ledger are rebuilt afterwards, because the imported events
lie in the past.`, &c, true)
	fs.StringVar(&from, "from", "", "the original port manager's root folder")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("import takes no arguments, got %q", fs.Args())
	}
	if from == "" {
		return usagef("import needs --from DIR, the original port manager's root folder")
	}
	orig, err := commands.ReadOriginal(from)
	if err != nil {
		return err
	}
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	res, err := b.Import(ctx, orig.Events)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, importReport{
			Files: orig.Files, Lines: orig.Lines, Events: len(orig.Events), Imported: res.Imported,
			Duplicates: res.Duplicates, Malformed: nonNil(orig.Malformed), Warnings: nonNil(orig.Warnings),
			Skipped: nonNil(res.Skipped), RecordsEnd: orig.End,
		})
	}
	w := e.stdout
	fmt.Fprintf(w, "read %d files (%d log lines): %d events: %d imported, %d already in the ledger, %d not imported (see the notes)\n",
		len(orig.Files), orig.Lines, len(orig.Events), res.Imported, res.Duplicates, len(res.Skipped))
	if !orig.End.IsZero() {
		fmt.Fprintf(w, "the original records end at %s: no imported allocation is held after that\n", ledger.FormatTime(orig.End))
	}
	if len(orig.Malformed) > 0 {
		fmt.Fprintf(w, "%d malformed lines skipped:\n", len(orig.Malformed))
		for _, p := range orig.Malformed {
			fmt.Fprintf(w, "  %s:%d: %s\n", safe(p.File), p.Line, safe(p.Reason))
		}
	}
	notes := uniqueProblems(append(slices.Clip(orig.Warnings), res.Skipped...))
	if len(notes) > 0 && res.Imported == 0 && res.Duplicates == len(orig.Events) {
		// The same files again: their notes were said at the first import.
		fmt.Fprintf(w, "nothing new: the %d notes of these files were printed when they were imported ('--json' lists them)\n", len(notes))
		return nil
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "%d notes:\n", len(notes))
		for _, p := range notes {
			fmt.Fprintf(w, "  %s:%d: %s\n", safe(p.File), p.Line, safe(p.Reason))
		}
	}
	return nil
}

// uniqueProblems returns ps without repeats, in order: a note is said once.
func uniqueProblems(ps []ledger.ImportProblem) []ledger.ImportProblem {
	seen := make(map[ledger.ImportProblem]bool, len(ps))
	out := ps[:0:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// importReport is the --json answer of `ledger import`.
type importReport struct {
	Files      []string               `json:"files"`
	Lines      int                    `json:"lines"`
	Events     int                    `json:"events"`
	Imported   int                    `json:"imported"`
	Duplicates int                    `json:"duplicates"`
	Malformed  []ledger.ImportProblem `json:"malformed"`
	Warnings   []ledger.ImportProblem `json:"warnings"`
	Skipped    []ledger.ImportProblem `json:"skipped"`
	// RecordsEnd is the last moment the original files speak of: no
	// imported allocation is held after it.
	RecordsEnd time.Time `json:"records_end,omitzero"`
}

func nonNil(ps []ledger.ImportProblem) []ledger.ImportProblem {
	if ps == nil {
		return []ledger.ImportProblem{}
	}
	return ps
}

// importer is a ledger whose Import also rebuilds the file projections:
// imported events lie in the past of the log, where catching up, which only
// appends after its position, never writes them. The daemon and the
// embedded mode both serve through it, so the rebuild has one owner.
type importer struct {
	*commands.Ledger
	rebuild func() error
}

// Import imports, then rebuilds port_registry.json and the JSONL logs.
func (s importer) Import(ctx context.Context, evs []ledger.Event) (ledger.ImportResult, error) {
	res, err := s.Ledger.Import(ctx, evs)
	if err != nil || res.Imported == 0 {
		return res, err
	}
	if err := s.rebuild(); err != nil {
		return res, fmt.Errorf("imported %d events, but rebuilding the files failed: %w", res.Imported, err)
	}
	return res, nil
}

// filesStatus is a ledger whose Status also says how far the daemon's
// projection files stand while a catch-up writes them.
type filesStatus struct {
	importer
	files func() ledger.FilesStatus
}

// Status adds the files' catch-up to the status now (not to one of the past).
func (s filesStatus) Status(ctx context.Context, at ulid.ULID) (ledger.Status, error) {
	st, err := s.importer.Status(ctx, at)
	if err == nil && at.IsZero() && s.files != nil {
		if fs := s.files(); fs.CatchingUp {
			st.Files = &fs
		}
	}
	return st, err
}
