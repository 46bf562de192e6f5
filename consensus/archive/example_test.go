package archive_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/conclavehq/conclave/consensus/archive"
)

func Example() {
	state := "the state machine's snapshot"
	meta := archive.Meta{Version: 1, ID: "2-42-1700000000000", Index: 42, Term: 2, Size: int64(len(state))}

	var file bytes.Buffer
	if err := archive.Write(&file, meta, strings.NewReader(state)); err != nil {
		fmt.Println(err)
		return
	}

	var restored bytes.Buffer
	got, err := archive.Read(&file, &restored)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("index %d, term %d, %d bytes: %s\n", got.Index, got.Term, got.Size, restored.String())

	_, err = archive.Read(strings.NewReader("not an archive"), &restored)
	fmt.Println(err)
	// Output:
	// index 42, term 2, 28 bytes: the state machine's snapshot
	// read snapshot archive: not a gzip-compressed snapshot archive: gzip: invalid header
}
