package commands

import "testing"

// TestEscapeObservedLeavesNothingTheStringCheckRefuses: what the OS tells
// (a command line) is escaped until validateText would take it.
func TestEscapeObservedLeavesNothingTheStringCheckRefuses(t *testing.T) {
	for _, s := range []string{"a\x1bb", "a\nb", "a\u202eb", "a\u200bb", "a\u2028b", "a\u2029b", "a\u0085b"} {
		got := escapeObserved(s, 200)
		if err := validateText("cmd", got, 200); err != nil {
			t.Errorf("escapeObserved(%q) = %q, which the string check refuses: %v", s, got, err)
		}
	}
}
