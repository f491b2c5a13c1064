package coordinator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// SystemIDFile is the name of the file, next to the config file, that holds
// the persistent system_id (as gitlab-runner's .runner_system_id).
const SystemIDFile = ".runner_system_id"

var systemIDRe = regexp.MustCompile(`^[sr]_[0-9a-zA-Z]{12}$`)

// machineIDFiles are read, in order, for a stable system_id.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// LoadSystemID returns the system_id stored next to configPath, creating
// it when absent: "s_" + 12 hex digits of HMAC-SHA256(machine-id,
// "gitlab-runner") when a machine id is readable, else "r_" + 12 random
// alphanumerics. The file is written 0600.
func LoadSystemID(configPath string) (string, error) {
	p := filepath.Join(filepath.Dir(configPath), SystemIDFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if id := strings.TrimSpace(string(b)); systemIDRe.MatchString(id) {
			return id, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read system id: %w", err)
	}
	id := newSystemID()
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write system id: %w", err)
	}
	return id, nil
}

func newSystemID() string {
	for _, f := range machineIDFiles {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			m := hmac.New(sha256.New, []byte(strings.TrimSpace(string(b))))
			m.Write([]byte("gitlab-runner"))
			return "s_" + hex.EncodeToString(m.Sum(nil))[:12]
		}
	}
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	buf := make([]byte, 12)
	_, _ = rand.Read(buf)
	for i := range buf {
		buf[i] = alnum[int(buf[i])%len(alnum)]
	}
	return "r_" + string(buf)
}
