// Package tmpfile creates scratch files that have no name on disk, so a
// process killed at any instant leaves none behind.
package tmpfile

import (
	"errors"
	"os"
)

// Create returns a read-write file in dir (the system's temporary directory
// when dir is empty) that no path names: it lives while it is open. On Linux
// the file is made unnamed (O_TMPFILE), so there is no instant at which a kill
// leaves it behind; where the kernel or file system lacks O_TMPFILE it is
// created under pattern and unlinked at once.
func Create(dir, pattern string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if f, err := unnamed(dir); err == nil {
		return f, nil
	} else if !errors.Is(err, errUnsupported) {
		return nil, err
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

var errUnsupported = errors.New("O_TMPFILE unsupported")
