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
	id, exists, err := PeekSystemID(configPath)
	if err != nil || exists {
		return id, err
	}
	if err := SaveSystemID(configPath, id); err != nil {
		return "", err
	}
	return id, nil
}

// PeekSystemID returns the system_id stored next to configPath (exists =
// true) or, when there is none yet, the one LoadSystemID would create,
// without writing anything.
func PeekSystemID(configPath string) (id string, exists bool, err error) {
	b, err := os.ReadFile(SystemIDPath(configPath))
	switch {
	case err == nil:
		if id := strings.TrimSpace(string(b)); systemIDRe.MatchString(id) {
			return id, true, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read system id: %w", err)
	}
	return newSystemID(), false, nil
}

// SaveSystemID writes id next to configPath (mode 0600).
func SaveSystemID(configPath, id string) error {
	if err := os.WriteFile(SystemIDPath(configPath), []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("write system id: %w", err)
	}
	return nil
}

// SystemIDPath returns the path of the system_id file of configPath.
func SystemIDPath(configPath string) string {
	return filepath.Join(filepath.Dir(configPath), SystemIDFile)
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
