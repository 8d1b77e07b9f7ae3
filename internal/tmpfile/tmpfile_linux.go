package tmpfile

import (
	"errors"
	"os"
	"syscall"
)

// oTmpfile is O_TMPFILE (__O_TMPFILE | O_DIRECTORY) on Linux; package
// syscall does not name it.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

func unnamed(dir string) (*os.File, error) {
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		// EISDIR, EOPNOTSUPP or EINVAL: a kernel or file system without it.
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EINVAL) {
			return nil, errUnsupported
		}
		return nil, &os.PathError{Op: "open unnamed file in", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
}
