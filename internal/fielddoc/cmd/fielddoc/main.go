// Command fielddoc writes the field reference of the aws_kinesis input and
// output (docs/FIELDS.md) from their specs. go generate ./internal/fielddoc
// runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/benthos-kinesis/benthos-kinesis/internal/fielddoc"
)

func main() {
	out := flag.String("o", "docs/FIELDS.md", "the file to write")
	flag.Parse()
	md, err := fielddoc.Markdown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fielddoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, append(md, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fielddoc:", err)
		os.Exit(1)
	}
}
