package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/closeloop/closeloop/libs/atomicfile"
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
	if err := atomicfile.Write(f.Path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("anchor: %w", err)
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
