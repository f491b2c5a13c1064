package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// DefaultHost is the local daemon socket, used when neither the host
// argument nor DOCKER_HOST is set.
const DefaultHost = "unix:///var/run/docker.sock"

// Label keys set on containers and images.
const (
	// LabelRunner holds the owning runner's short id.
	LabelRunner = "paas-runner.runner"
	// LabelJobID holds the job id.
	LabelJobID = "paas-runner.job-id"
	// LabelName holds the resource name.
	LabelName = "paas-runner.name"
)

// requestTimeout bounds calls that are not streams (build output and log
// streams are bounded by the caller's ctx only).
const requestTimeout = 2 * time.Minute

// ErrBuild wraps errors reported by the daemon in a build's output (a
// failing Dockerfile step, a missing base image).
var ErrBuild = errors.New("image build failed")

// Client is a Docker Engine client. It is safe for concurrent use.
type Client struct {
	api  *client.Client
	host string
}

// New returns a client of the daemon at host (unix:///path or
// tcp://host:port); an empty host means $DOCKER_HOST, else DefaultHost.
// It does not contact the daemon (see Ping).
func New(host string) (*Client, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultHost
	}
	if !strings.HasPrefix(host, "unix://") && !strings.HasPrefix(host, "tcp://") {
		return nil, fmt.Errorf("docker host %q: want unix:///path or tcp://host:port", host)
	}
	api, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("create docker client for %s: %w", host, err)
	}
	return &Client{api: api, host: host}, nil
}

// Host returns the daemon endpoint.
func (c *Client) Host() string { return c.host }

// SocketPath returns the daemon's Unix socket path (to mount it into
// containers): the path of a unix:// host, else the default socket path.
func (c *Client) SocketPath() string {
	if p, ok := strings.CutPrefix(c.host, "unix://"); ok {
		return p
	}
	return strings.TrimPrefix(DefaultHost, "unix://")
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	if err := c.api.Close(); err != nil {
		return fmt.Errorf("close docker client: %w", err)
	}
	return nil
}

// Ping checks that the daemon answers and returns the negotiated API
// version.
func (c *Client) Ping(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := c.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", fmt.Errorf("ping docker daemon at %s: %w", c.host, err)
	}
	return c.api.ClientVersion(), nil
}

// BuildImage builds the tar stream buildContext (a Dockerfile at its root)
// into an image tagged tag, carrying labels. It reads the whole build
// output and returns the daemon's error (wrapping ErrBuild, with the last
// output lines) when a step fails.
func (c *Client) BuildImage(ctx context.Context, tag string, buildContext io.Reader, labels map[string]string) error {
	res, err := c.api.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		// Every job image is built from scratch steps: with a shared build
		// cache, removing one job's image (which prunes its untagged
		// intermediate images) races with a concurrent build that is
		// "using cache" of the same intermediate, and that build fails with
		// "unknown parent image ID". The steps are a few small COPYs, so
		// the cache buys nothing here.
		NoCache: true,
		Labels:  labels,
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := readBuildOutput(res.Body); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	return nil
}

// buildMessage is one JSON message of the build output stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// tailLines is how many output lines a build error quotes.
const tailLines = 5

// readBuildOutput consumes a build output stream and returns the error it
// reports, if any.
func readBuildOutput(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var m buildMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read build output: %w", err)
		}
		for line := range strings.Lines(m.Stream) {
			if line = strings.TrimSpace(line); line != "" {
				tail = append(tail, line)
				if len(tail) > tailLines {
					tail = tail[1:]
				}
			}
		}
		msg := m.Error
		if msg == "" && m.ErrorDetail != nil {
			msg = m.ErrorDetail.Message
		}
		if msg != "" {
			if len(tail) > 0 {
				return fmt.Errorf("%w: %s (after: %s)", ErrBuild, msg, strings.Join(tail, " | "))
			}
			return fmt.Errorf("%w: %s", ErrBuild, msg)
		}
	}
}

// RunSpec describes a container to run.
type RunSpec struct {
	// Image is the image to run.
	Image string
	// Name is the container name.
	Name string
	// Labels are set on the container.
	Labels map[string]string
	// MountSocket mounts the daemon's socket at /var/run/docker.sock.
	MountSocket bool
	// SocketPath is the host path of the socket to mount (default
	// Client.SocketPath).
	SocketPath string
	// Cmd overrides the image's CMD (arguments of its ENTRYPOINT).
	Cmd []string
	// Env is a list of KEY=value.
	Env []string
	// MemoryBytes limits the container's memory (0 = no limit).
	MemoryBytes int64
	// NanoCPUs limits the container's CPU (1e9 = one CPU; 0 = no limit).
	NanoCPUs int64
	// NetworkMode is the container's network ("host" in tests reaching a
	// fake coordinator on 127.0.0.1); empty = the daemon's default.
	NetworkMode string
}

// Run creates and starts a container and returns its id once it is
// started; it does not wait for the container to end (see Inspect). If a
// container of that name exists already (a relaunch after a crash), it is
// started if needed and its id returned.
func (c *Client) Run(ctx context.Context, spec RunSpec) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	host := &container.HostConfig{NetworkMode: container.NetworkMode(spec.NetworkMode)}
	host.Memory, host.NanoCPUs = spec.MemoryBytes, spec.NanoCPUs
	if spec.MountSocket {
		sock := spec.SocketPath
		if sock == "" {
			sock = c.SocketPath()
		}
		host.Binds = []string{sock + ":/var/run/docker.sock"}
	}
	created, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       spec.Name,
		Config:     &container.Config{Image: spec.Image, Labels: spec.Labels, Env: spec.Env, Cmd: spec.Cmd},
		HostConfig: host,
	})
	id := created.ID
	switch {
	case cerrdefs.IsConflict(err):
		st, ierr := c.Inspect(ctx, spec.Name)
		if ierr != nil {
			return "", fmt.Errorf("create container %s: %w (inspect: %w)", spec.Name, err, ierr)
		}
		if st.Status != StatusCreated {
			return st.ID, nil
		}
		id = st.ID
	case err != nil:
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	if _, err := c.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return id, fmt.Errorf("start container %s: %w", spec.Name, err)
	}
	return id, nil
}

// Status is the coarse state of a container.
type Status string

// Status values.
const (
	// StatusNotFound: no such container.
	StatusNotFound Status = "not-found"
	// StatusCreated: created, never started.
	StatusCreated Status = "created"
	// StatusRunning: running (also paused or restarting).
	StatusRunning Status = "running"
	// StatusExited: the process ended (exited or dead).
	StatusExited Status = "exited"
)

// State is what Inspect tells of a container.
type State struct {
	ID       string
	Status   Status
	ExitCode int
	// OOMKilled reports that the kernel killed the process for memory.
	OOMKilled bool
	// Error is the daemon's error text (e.g. a failed start).
	Error string
}

// Inspect returns the state of container idOrName; a missing container is
// StatusNotFound with a nil error.
func (c *Client) Inspect(ctx context.Context, idOrName string) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.api.ContainerInspect(ctx, idOrName, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return State{Status: StatusNotFound}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("inspect container %s: %w", idOrName, err)
	}
	st := State{ID: res.Container.ID, Status: StatusRunning}
	if s := res.Container.State; s != nil {
		st.ExitCode, st.OOMKilled, st.Error = s.ExitCode, s.OOMKilled, s.Error
		switch s.Status {
		case container.StateCreated:
			st.Status = StatusCreated
		case container.StateExited, container.StateDead:
			st.Status = StatusExited
		case container.StateRemoving:
			st.Status = StatusExited
		}
	}
	return st, nil
}

// Kill sends SIGKILL to a running container; a container that is gone or
// not running is not an error.
func (c *Client) Kill(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := c.api.ContainerKill(ctx, id, client.ContainerKillOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("kill container %s: %w", id, err)
	}
	return nil
}

// Remove force-removes the container (with its anonymous volumes) and then
// the image; either may be empty. Already gone is a success.
func (c *Client) Remove(ctx context.Context, containerID, image string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var errs []error
	if containerID != "" {
		_, err := c.api.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", containerID, err))
		}
	}
	if image != "" && len(errs) == 0 {
		_, err := c.api.ImageRemove(ctx, image, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove image %s: %w", image, err))
		}
	}
	return errors.Join(errs...)
}

// isRemovalInProgress recognises the conflict the daemon returns while a
// concurrent removal of the same container runs.
func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

// Container is one container found by ListByLabel.
type Container struct {
	ID     string
	Name   string
	Image  string
	Labels map[string]string
}

// ListByLabel returns every container (running or not) carrying all the
// given labels.
func (c *Client) ListByLabel(ctx context.Context, labels map[string]string) ([]Container, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, it := range res.Items {
		name := ""
		if len(it.Names) > 0 {
			name = strings.TrimPrefix(it.Names[0], "/")
		}
		out = append(out, Container{ID: it.ID, Name: name, Image: it.Image, Labels: it.Labels})
	}
	return out, nil
}

// Image is one image found by ImagesByLabel.
type Image struct {
	ID     string
	Tags   []string
	Labels map[string]string
}

// ImagesByLabel returns every image carrying all the given labels.
func (c *Client) ImagesByLabel(ctx context.Context, labels map[string]string) ([]Image, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.api.ImageList(ctx, client.ImageListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Image, 0, len(res.Items))
	for _, it := range res.Items {
		out = append(out, Image{ID: it.ID, Tags: it.RepoTags, Labels: it.Labels})
	}
	return out, nil
}

// ImageExists reports whether image (a tag or id) exists.
func (c *Client) ImageExists(ctx context.Context, image string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := c.api.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", image, err)
	}
	return true, nil
}

// Logs returns the combined output of a container (for diagnostics; it
// may hold what the job printed).
func (c *Client) Logs(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("read logs of container %s: %w", id, err)
	}
	defer res.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(res, 1<<20)); err != nil {
		return "", fmt.Errorf("read logs of container %s: %w", id, err)
	}
	return demux(buf.Bytes()), nil
}

// demux strips the 8-byte frame headers of a non-TTY log stream.
func demux(b []byte) string {
	var out strings.Builder
	for len(b) >= 8 {
		n := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		b = b[8:]
		if n > len(b) {
			n = len(b)
		}
		out.Write(b[:n])
		b = b[n:]
	}
	return out.String()
}

func labelFilters(labels map[string]string) client.Filters {
	f := client.Filters{}
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}
