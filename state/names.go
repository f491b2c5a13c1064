package state

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ParseResourceName splits a resource name made by executors.ResourceName,
// <prefix><runner>-<job id>, into the runner part and the job id. It also
// parses the Heptapod PAAS Runner's hpd-job-<token[:8]>-<job id> names
// (whose runner part may itself contain "-", as in "glrt-abc"): the job id
// is what follows the last "-". When prefix already includes the runner
// part (executors.ResourcePrefix), runner is "". ok is false when name does
// not start with prefix or does not end with a positive decimal job id.
func ParseResourceName(prefix, name string) (runner string, jobID int64, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i == 0 || i == len(rest)-1 {
		return "", 0, false
	}
	// i < 0: prefix already held the runner part
	// (executors.ResourcePrefix); runner is then "".
	digits := rest[i+1:]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id <= 0 {
		return "", 0, false
	}
	return rest[:max(i, 0)], id, true
}

// ResourceID returns the resource id recorded in a resource dump: the "id"
// (or "app_id") member of an object dump, or a bare string dump itself
// (Heptapod local-docker). It returns "" when there is none.
func ResourceID(dump json.RawMessage) string {
	if len(dump) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(dump, &s) == nil {
		return s
	}
	var o struct {
		ID    string `json:"id"`
		AppID string `json:"app_id"`
	}
	if json.Unmarshal(dump, &o) != nil {
		return ""
	}
	if o.ID != "" {
		return o.ID
	}
	return o.AppID
}
