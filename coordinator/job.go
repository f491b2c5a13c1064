package coordinator

import (
	"encoding/json"
	"fmt"

	"gitlab.com/paas-runner/paas-runner/config"
)

// Job is the payload of a job acquired with POST /api/v4/jobs/request
// (gitlab-runner-api.md §3). Only the fields paas-runner reads are typed;
// Raw keeps the payload exactly as received, for forwarding to the inner
// runner (job.json). Token is a config.Secret so that a Job never prints it.
type Job struct {
	ID            int64           `json:"id"`
	Token         config.Secret   `json:"token"`
	AllowGitFetch bool            `json:"allow_git_fetch"`
	JobInfo       JobInfo         `json:"job_info"`
	GitInfo       GitInfo         `json:"git_info"`
	RunnerInfo    RunnerInfo      `json:"runner_info"`
	Variables     []Variable      `json:"variables"`
	Steps         []Step          `json:"steps"`
	Image         *Image          `json:"image"`
	Services      []Image         `json:"services"`
	Artifacts     json.RawMessage `json:"artifacts,omitempty"`
	Cache         json.RawMessage `json:"cache,omitempty"`
	Features      JobFeatures     `json:"features"`

	// Raw is the payload as received. Never log it: it holds the job token.
	Raw json.RawMessage `json:"-"`
}

// JobInfo is the payload's job_info object.
type JobInfo struct {
	ID              int64  `json:"id"`
	Name            string `json:"name"`
	Stage           string `json:"stage"`
	PipelineID      int64  `json:"pipeline_id"`
	ProjectID       int64  `json:"project_id"`
	ProjectName     string `json:"project_name"`
	ProjectFullPath string `json:"project_full_path"`
	NamespaceID     int64  `json:"namespace_id"`
	RootNamespaceID int64  `json:"root_namespace_id"`
}

// GitInfo is the payload's git_info object. RepoURL embeds the job token.
type GitInfo struct {
	RepoURL   config.Secret `json:"repo_url"`
	Ref       string        `json:"ref"`
	Sha       string        `json:"sha"`
	BeforeSha string        `json:"before_sha"`
	RefType   string        `json:"ref_type"`
	Refspecs  []string      `json:"refspecs"`
	Depth     int           `json:"depth"`
}

// RunnerInfo is the payload's runner_info object.
type RunnerInfo struct {
	Timeout int `json:"timeout"`
}

// Variable is one job variable.
type Variable struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Public bool   `json:"public"`
	File   bool   `json:"file"`
	Masked bool   `json:"masked"`
	Raw    bool   `json:"raw"`
}

// Step is one entry of the payload's steps (script, after_script, …).
type Step struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int      `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

// Image is the payload's image object, or one of its services.
type Image struct {
	Name       string   `json:"name"`
	Alias      string   `json:"alias,omitempty"`
	Entrypoint []string `json:"entrypoint"`
	Command    []string `json:"command,omitempty"`
}

// JobFeatures is the payload's features object.
type JobFeatures struct {
	TraceSections  bool     `json:"trace_sections"`
	FailureReasons []string `json:"failure_reasons"`
}

// ParseJob decodes a job payload, keeping the raw bytes. A payload without
// a positive id or a token is rejected.
func ParseJob(raw []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(raw, &j); err != nil {
		if id, token, ok := jobIdentity(raw); ok {
			return nil, &MalformedJobError{ID: id, Token: token, Err: err}
		}
		return nil, fmt.Errorf("decode job payload: %w", err)
	}
	if j.ID <= 0 {
		return nil, fmt.Errorf("decode job payload: missing or invalid id")
	}
	if j.Token.IsZero() {
		return nil, fmt.Errorf("decode job payload: job %d has no token", j.ID)
	}
	j.Raw = append(json.RawMessage(nil), raw...)
	return &j, nil
}

// Variable returns the value of the first job variable named key.
func (j *Job) Variable(key string) (string, bool) {
	for _, v := range j.Variables {
		if v.Key == key {
			return v.Value, true
		}
	}
	return "", false
}

// MalformedJobError is a job payload that could not be decoded although its
// id and token could: the job was assigned to this runner and can still be
// reported failed, with Err explaining why. Error never shows the token.
type MalformedJobError struct {
	ID    int64
	Token config.Secret
	Err   error
}

// Error implements error.
func (e *MalformedJobError) Error() string {
	return fmt.Sprintf("decode job payload of job %d: %v", e.ID, e.Err)
}

// Unwrap returns ErrMalformedJob and the decoding error.
func (e *MalformedJobError) Unwrap() []error { return []error{ErrMalformedJob, e.Err} }

// jobIdentity reads just the id and token of a payload whose full decoding
// failed.
func jobIdentity(raw []byte) (int64, config.Secret, bool) {
	var head map[string]json.RawMessage
	if json.Unmarshal(raw, &head) != nil {
		return 0, "", false
	}
	var (
		id    int64
		token string
	)
	if json.Unmarshal(head["id"], &id) != nil || json.Unmarshal(head["token"], &token) != nil {
		return 0, "", false
	}
	if id <= 0 || token == "" {
		return 0, "", false
	}
	return id, config.Secret(token), true
}
