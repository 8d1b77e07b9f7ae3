package local_test

import (
	"testing"

	"tally/storage"
	"tally/storage/local"
	"tally/storage/storagetest"
)

func TestLocalStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
