package main

import (
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestSafe(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "grace_backend: Main API", "grace_backend: Main API"},
		{"unicode letters stay", "café ünïcode 日本", "café ünïcode 日本"},
		{"escape sequence", "\x1b]0;title\x07", `\x1b]0;title\a`},
		{"newline and tab", "a\nb\tc", `a\nb\tc`},
		{"right-to-left override", "evil\u202eexe.txt", `evil\u202eexe.txt`},
		{"zero width space", "a\u200bb", `a\u200bb`},
		{"invalid UTF-8", "a\xffb", `a\xffb`},
		{"long", strings.Repeat("a", maxShown+50), strings.Repeat("a", maxShown) + "…(50 more bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(safe(tt.in), tt.want) // escaped and bounded
		})
	}
}
