package tmpfile

import (
	"io"
	"os"
	"testing"
)

func TestAScratchFileHasNoNameOnDiskFromTheMomentItExists(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, "scratch-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("runs"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("scratch file left a name in %s: %v", dir, entries)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "runs" {
		t.Fatalf("read back %q, %v", b, err)
	}
}

func TestAMissingDirectoryIsAnErrorNamingIt(t *testing.T) {
	_, err := Create(t.TempDir()+"/missing", "scratch-*")
	if err == nil {
		t.Fatal("created a scratch file in a missing directory")
	}
}
