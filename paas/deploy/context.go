package deploy

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
)

// Names of the files of a build context.
const (
	DockerfileName  = "Dockerfile"
	RunnerTOMLName  = "runner.toml"
	JobJSONName     = "job.json"
	AgentBinaryName = "paas-runner"
)

// File is one file at the root of a build context.
type File struct {
	// Name is the file name (no directory).
	Name string
	// Mode is the Unix permission bits (0o644, 0o755).
	Mode int64
	// Data is the content.
	Data []byte
}

// Context is a generated build context: the files of the commit pushed to a
// deployment repository, or of the tar stream sent to a Docker Engine.
// runner.toml and job.json hold secrets (runner and job tokens): never log a
// Context's data.
type Context struct {
	Files []File
}

// File returns the content of the file named name.
func (c *Context) File(name string) ([]byte, bool) {
	for _, f := range c.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// contextEpoch is the modification time written in tar headers, fixed so
// that identical contexts give identical tar streams.
var contextEpoch = time.Unix(0, 0).UTC()

// WriteTar writes the context as an uncompressed tar stream (the format the
// Docker Engine build API takes).
func (c *Context) WriteTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, f := range c.Files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     f.Mode,
			Size:     int64(len(f.Data)),
			ModTime:  contextEpoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar header of %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("write tar entry %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close tar stream: %w", err)
	}
	return nil
}

// Options tunes Build.
type Options struct {
	// AgentBinary is the path of a static paas-runner binary to place in
	// the context for inner_runner = "agent" when the runner has no
	// agent_image. Ignored otherwise.
	AgentBinary string
	// ExtraRemovedKeys lists further top-level keys to drop from the
	// forwarded runner table (executor-specific, e.g. "work_root").
	ExtraRemovedKeys []string
}

// Build generates the build context of job for runner r: Dockerfile,
// runner.toml and job.json (plus the agent binary for inner_runner =
// "agent" without agent_image). Errors a user can act on (no image for the
// agent mode) are *executors.JobError.
func Build(r *config.Runner, job *coordinator.Job, opts Options) (*Context, error) {
	if job == nil || len(job.Raw) == 0 {
		return nil, errors.New("build context: job has no raw payload")
	}
	inner, err := RunnerTOML(r, opts.ExtraRemovedKeys...)
	if err != nil {
		return nil, err
	}
	payload, err := RewriteDependencyProxy(job.Raw)
	if err != nil {
		return nil, fmt.Errorf("build context of job %d: %w", job.ID, err)
	}
	c := &Context{}
	switch r.InnerRunner {
	case "", config.InnerRunnerHeptapod:
		c.Files = append(c.Files, File{Name: DockerfileName, Mode: 0o644, Data: []byte(HeptapodDockerfile(r.HeptapodRunnerMainImage))})
	case config.InnerRunnerAgent:
		base, err := agentBaseImage(r, job)
		if err != nil {
			return nil, err
		}
		c.Files = append(c.Files, File{Name: DockerfileName, Mode: 0o644, Data: []byte(AgentDockerfile(base, r.AgentImage))})
		if r.AgentImage == "" {
			if opts.AgentBinary == "" {
				return nil, errors.New("build context: inner_runner = \"agent\" needs agent_image or an agent binary")
			}
			bin, err := os.ReadFile(opts.AgentBinary)
			if err != nil {
				return nil, fmt.Errorf("read agent binary: %w", err)
			}
			c.Files = append(c.Files, File{Name: AgentBinaryName, Mode: 0o755, Data: bin})
		}
	default:
		return nil, fmt.Errorf("build context: unknown inner_runner %q", r.InnerRunner)
	}
	c.Files = append(c.Files,
		File{Name: RunnerTOMLName, Mode: 0o600, Data: inner},
		File{Name: JobJSONName, Mode: 0o600, Data: payload},
	)
	return c, nil
}

// HeptapodDockerfile returns the five-line Dockerfile of reference §6.6,
// running Heptapod Runner's exec-fetched-job from image.
func HeptapodDockerfile(image string) string {
	return "FROM " + image + "\n" +
		"COPY runner.toml /etc/heptapod-runner/runner.toml\n" +
		"COPY job.json /etc/heptapod-runner/job.json\n" +
		"ENV DEBUG=\"true\"\n" +
		`ENTRYPOINT ["/usr/bin/gitlab-runner", "exec-fetched-job", "--config", "/etc/heptapod-runner/runner.toml", "/etc/heptapod-runner/job.json"]` + "\n"
}

// AgentDockerfile returns the Dockerfile running paas-runner's exec-job
// agent in base. The agent comes from agentImage (/usr/bin/paas-runner) when
// set, else from the paas-runner file of the context.
func AgentDockerfile(base, agentImage string) string {
	var b strings.Builder
	b.WriteString("FROM " + base + "\n")
	if agentImage != "" {
		b.WriteString("COPY --from=" + agentImage + " /usr/bin/paas-runner /usr/local/bin/paas-runner\n")
	} else {
		b.WriteString("COPY paas-runner /usr/local/bin/paas-runner\n")
	}
	b.WriteString("COPY runner.toml /etc/paas-runner/runner.toml\n")
	b.WriteString("COPY job.json /etc/paas-runner/job.json\n")
	b.WriteString(`ENTRYPOINT ["/usr/local/bin/paas-runner", "exec-job", "--config", "/etc/paas-runner/runner.toml", "/etc/paas-runner/job.json"]` + "\n")
	return b.String()
}

// agentBaseImage returns the image the agent runs in: the job's image
// (variables expanded), else [runners.docker] image.
func agentBaseImage(r *config.Runner, job *coordinator.Job) (string, error) {
	if job.Image != nil && job.Image.Name != "" {
		name, err := newExpander(job.Variables).expand(job.Image.Name)
		if err != nil {
			return "", fmt.Errorf("expand image name of job %d: %w", job.ID, err)
		}
		if name != "" {
			return name, nil
		}
	}
	if d, ok := r.Extra["docker"].(map[string]any); ok {
		if img, ok := d["image"].(string); ok && img != "" {
			return img, nil
		}
	}
	return "", &executors.JobError{
		Public: "this job names no image and the runner has no [runners.docker] image: paas-runner cannot choose where to run it",
		Reason: coordinator.RunnerConfigError,
	}
}

// RunnerTOML serialises the inner runner configuration of r (reference
// §7.2): {"runners": [<forwarded table>]}, with real secret values, without
// any cc_* key, trace-watch or image key, executor = "docker".
// extraRemoved names further keys to drop.
func RunnerTOML(r *config.Runner, extraRemoved ...string) ([]byte, error) {
	table := innerTable(r)
	for _, k := range extraRemoved {
		delete(table, k)
	}
	var buf bytes.Buffer
	doc := map[string]any{"runners": []map[string]any{table}}
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode runner.toml: %w", err)
	}
	return buf.Bytes(), nil
}
