package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// unitName is the systemd unit that runs `ledger serve`.
const unitName = "portledger.service"

func runServiceCmd(ctx context.Context, e *env, args []string) error {
	var c common
	var user bool
	fset := newFlags(e, "service", "service install|uninstall [--user] [--addr A]", `
Install 'ledger serve' as a systemd user service, so the daemon starts with
your session and restarts on failure: 'service install' writes
$XDG_CONFIG_HOME/systemd/user/`+unitName+` (default ~/.config/systemd/user),
running this binary with your data directory (--data) and, if given, --addr;
then it says how to enable it and how to keep it running when you are
logged out (lingering). 'service uninstall' removes the unit and says how
to stop it first. Nothing is started or stopped here: systemctl does that.`, &c, false)
	fset.BoolVar(&user, "user", true, "a user unit (the only kind written)")
	pos, err := parseInterleaved(e, fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "install" && pos[0] != "uninstall") {
		return usagef("service takes install or uninstall")
	}
	if !user {
		return usagef("service: only user units are written (--user)")
	}
	dir, err := userUnitDir(e.getenv)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, unitName)
	if pos[0] == "uninstall" {
		return uninstallUnit(e, path)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	data, err := filepath.Abs(c.data)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unit := serveUnit(exe, data, c.addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unit directory: %w", err)
	}
	old, _ := os.ReadFile(path)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(unit), 0o644); err != nil {
		return fmt.Errorf("write the unit: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write the unit: %w", err)
	}
	verb := "wrote"
	if old != nil {
		verb = "replaced"
	}
	fmt.Fprintf(e.stdout, `%s %s
  it runs: %s serve --data %s
Enable and start it:
  systemctl --user daemon-reload
  systemctl --user enable --now %s
Keep it running while you are logged out (and start it at boot):
  loginctl enable-linger %s
Its log: journalctl --user -u %s
`, verb, path, exe, data, unitName, userName(e.getenv), unitName)
	return nil
}

// userUnitDir is where systemd looks for a user's own units.
func userUnitDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "systemd", "user"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: no place for a user unit")
	}
	return filepath.Join(home, ".config", "systemd", "user"), nil
}

func uninstallUnit(e *env, path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(e.stdout, "no unit at %s: nothing to remove\n", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove the unit: %w", err)
	}
	fmt.Fprintf(e.stdout, `removed %s
If it still runs, stop it and forget it:
  systemctl --user disable --now %s
  systemctl --user daemon-reload
`, path, unitName)
	return nil
}

// serveUnit is the systemd unit that runs `ledger serve` on data.
func serveUnit(exe, data, addr string) string {
	args := []string{exe, "serve", "--data", data}
	if addr != "" {
		args = append(args, "--addr", addr)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = unitQuote(a)
	}
	return `[Unit]
Description=portledger daemon: hands out ports, watches their holders (ledger serve)

[Service]
Type=simple
ExecStart=` + strings.Join(quoted, " ") + `
Restart=on-failure
RestartSec=2s
# ledger serve stops cleanly on SIGTERM.
KillSignal=SIGTERM
TimeoutStopSec=30s

[Install]
WantedBy=default.target
`
}

// unitQuote writes one argument of ExecStart: systemd splits on spaces,
// reads backslash escapes and expands % specifiers and $VARIABLES, so '%'
// and '$' are doubled and a word that needs it is double-quoted with '"'
// and '\' escaped.
func unitQuote(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "%", "%%"), "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// userName names the user for loginctl.
func userName(getenv func(string) string) string {
	if u := getenv("USER"); u != "" {
		return u
	}
	return "$USER"
}
