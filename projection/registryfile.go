package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/oklog/ulid/v2"
)

// port_registry.json.
//
// The file keeps the original port manager's shape, the live allocations
// keyed by port, and adds the managed range and the ID of the last event it
// reflects:
//
//	{
//	  "allocations": {
//	    "8000": {
//	      "port": 8000,
//	      "service_name": "grace_backend",
//	      ...
//	    }
//	  },
//	  "last_event_id": "01JCZ...",
//	  "port_range": "8000-8100"
//	}
//
// Top-level keys are sorted, allocations come in port order, the indent is
// two spaces, so the same registry always gives the same bytes.

// registryFileJSON is what readRegistryFile needs of the file.
type registryFileJSON struct {
	Allocations map[string]json.RawMessage `json:"allocations"`
	LastEventID *string                    `json:"last_event_id"`
	PortRange   string                     `json:"port_range"`
}

// marshalRegistryFile returns the bytes of port_registry.json for reg at the
// position pos (zero: before any event, written as "").
func marshalRegistryFile(reg *Registry, pos ulid.ULID) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\n  \"allocations\": {")
	ports := make([]int, 0, len(reg.Allocs))
	for p := range reg.Allocs {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "  ")
	for i, p := range ports {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    \"")
		b.WriteString(strconv.Itoa(p))
		b.WriteString("\": ")
		if err := enc.Encode(reg.Allocs[p]); err != nil {
			return nil, fmt.Errorf("port_registry.json: port %d: %w", p, err)
		}
		b.Truncate(b.Len() - 1) // the Encoder's newline
	}
	if len(ports) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("},\n  \"last_event_id\": \"")
	b.WriteString(positionString(pos))
	b.WriteString("\",\n  \"port_range\": \"")
	b.WriteString(reg.Range.String())
	b.WriteString("\"\n}\n")
	return b.Bytes(), nil
}

// positionString renders a position as the files write it: the ULID, or ""
// for the position before the first event.
func positionString(pos ulid.ULID) string {
	if pos.IsZero() {
		return ""
	}
	return pos.String()
}

// readRegistryFile returns the last_event_id of the port_registry.json at
// path. ok is false when the file is missing, is not JSON in the registry
// shape, or its last_event_id is not a ULID (nor "").
func readRegistryFile(path string) (lastEventID string, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var f registryFileJSON
	if err := json.Unmarshal(data, &f); err != nil || f.Allocations == nil || f.LastEventID == nil {
		return "", false
	}
	if id := *f.LastEventID; id != "" {
		if _, err := ulid.ParseStrict(id); err != nil {
			return "", false
		}
	}
	return *f.LastEventID, true
}

// writeFileAtomic replaces path with data so that a reader sees either the
// old file or the new one, never a part: a temporary file in the same folder
// is written and renamed over path.
//
// Neither the file nor the folder is fsynced. The registry file is a
// projection of the log, which alone is durable: after a power loss the
// file may be the old one, or empty, and OpenFiles finds its last_event_id
// behind the log (or unreadable) and CatchUp writes it again. Its two
// fsyncs per catch-up used to compete with the writer's for the disk; a
// lone allocate+release over HTTP paid for them.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// tempPattern names the temporary files of writeFileAtomic for path.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// removeTemps removes temporary files that a crash in writeFileAtomic left
// next to path.
func removeTemps(path string) error {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	for _, name := range stale {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a folder, making renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeRegistryFile writes port_registry.json for reg at pos, atomically.
func writeRegistryFile(path string, reg *Registry, pos ulid.ULID) error {
	data, err := marshalRegistryFile(reg, pos)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
