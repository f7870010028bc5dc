package flagdoc_test

import (
	"bytes"
	"flag"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/flagdoc"
)

func TestPrintSpellsFlagsWithTwoDashes(t *testing.T) {
	is := is.New(t)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("reason", "released", "why the `text` is")
	fs.Bool("force", false, "do it anyway")
	fs.Duration("interval", 30*time.Second, "how often")
	var b bytes.Buffer
	flagdoc.Print(&b, fs)
	is.Equal(b.String(), "  --force\n    \tdo it anyway\n"+
		"  --interval duration\n    \thow often (default 30s)\n"+
		"  --reason text\n    \twhy the text is (default \"released\")\n") // two dashes, types, defaults
}
