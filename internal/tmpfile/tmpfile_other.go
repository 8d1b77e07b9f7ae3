//go:build !linux

package tmpfile

import "os"

func unnamed(string) (*os.File, error) { return nil, errUnsupported }
