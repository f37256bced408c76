package input

import (
	"errors"
	"os"
	"path/filepath"
)

// readFileUp reads rel from the nearest ancestor directory that holds it
// (shared/ sits beside the repository).
func readFileUp(rel string) ([]byte, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
			return b, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New(rel + " not found above the working directory")
		}
		dir = parent
	}
}
