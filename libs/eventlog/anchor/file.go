package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the anchor file of a data directory.
const FileName = "anchor.json"

// File keeps the latest anchor in one JSON file, replaced atomically
// (written to a temporary file, synced, renamed, the directory synced), so
// a crash leaves the old anchor or the new one, never half of one.
type File struct{ Path string }

// Name implements Store.
func (f File) Name() string { return "file " + f.Path }

// Save implements Store.
func (f File) Save(_ context.Context, a Anchor) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, ".anchor-*.tmp")
	if err != nil {
		return fmt.Errorf("anchor: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: already gone
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("anchor: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("anchor: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("anchor: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("anchor: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("anchor: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("anchor: sync %s: %w", dir, err)
	}
	return nil
}

// Latest implements Store: no file is no anchor; a file that does not
// parse is an error (it must not pass for "no anchor").
func (f File) Latest(context.Context) (Anchor, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, err
	}
	var a Anchor
	if err := json.Unmarshal(b, &a); err != nil {
		return Anchor{}, false, fmt.Errorf("%s does not parse: %w", f.Path, err)
	}
	return a, true, nil
}
