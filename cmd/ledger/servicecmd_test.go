package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

func TestServiceInstallWritesAUnitSystemdAccepts(t *testing.T) {
	is := is.New(t)
	home := t.TempDir()
	cfg := filepath.Join(home, "config")
	data := filepath.Join(home, "my data") // a space, which the unit must quote
	service := func(args ...string) (string, string, int) {
		cmd := exec.Command(bins.Ledger(t), append([]string{"service"}, args...)...)
		cmd.Env = append(testbin.Env(data, whyRange), "HOME="+home, "XDG_CONFIG_HOME="+cfg, "USER=ana")
		return testbin.Run(t, cmd)
	}
	out, errOut, code := service("install", "--user")
	is.Equal(code, 0) // installed
	is.Equal(errOut, "")
	unitPath := filepath.Join(cfg, "systemd", "user", "portledger.service")
	is.True(strings.HasPrefix(out, "wrote "+unitPath))                                 // says where
	is.True(strings.Contains(out, "systemctl --user enable --now portledger.service")) // how to enable it
	is.True(strings.Contains(out, "loginctl enable-linger ana"))                       // and lingering
	b, err := os.ReadFile(unitPath)
	is.NoErr(err) // the unit is there
	unit := string(b)
	is.True(strings.Contains(unit, "ExecStart="+bins.Ledger(t)+` serve --data "`+data+`"`)) // the daemon on the user's data directory
	is.True(strings.Contains(unit, "\nRestart=on-failure\n"))                               // restarted on failure
	is.True(strings.Contains(unit, "\nWantedBy=default.target\n"))                          // started with the session

	if sa, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed here: the unit is not verified by systemd")
	} else {
		out, err := exec.Command(sa, "verify", unitPath).CombinedOutput()
		is.NoErr(err)             // systemd accepts the unit
		is.Equal(string(out), "") // without a warning
	}

	out, _, code = service("install")
	is.Equal(code, 0)
	is.True(strings.HasPrefix(out, "replaced ")) // a second install says it replaced the unit
	out, _, code = service("uninstall")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "systemctl --user disable --now portledger.service")) // how to stop it
	_, err = os.Stat(unitPath)
	is.True(os.IsNotExist(err)) // the unit is gone
	out, _, code = service("uninstall")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "nothing to remove")) // a second uninstall changes nothing

	_, errOut, code = service("start")
	is.Equal(code, 2) // an unknown action is a usage error
	is.True(strings.Contains(errOut, "service takes install or uninstall"))
}

func TestUnitQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/usr/bin/ledger", "/usr/bin/ledger"},
		{"/home/ana/my data", `"/home/ana/my data"`},
		{`/a"b`, `"/a\"b"`},
		{"/100%", "/100%%"},
		{"/$HOME", "/$$HOME"},
	} {
		t.Run(c.in, func(t *testing.T) {
			is := is.New(t)
			is.Equal(unitQuote(c.in), c.want)
		})
	}
}
