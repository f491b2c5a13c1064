package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/internal/atomicfile"
)

// Default retry back-off of a failed state write.
const (
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
)

// FileMode is the mode of the state file and of its backups: it holds job
// tokens.
const FileMode fs.FileMode = 0o600

type options struct {
	runners    map[string]string
	retryMin   time.Duration
	retryMax   time.Duration
	now        func() time.Time
	writeFile  func(path string, data []byte) error
	backupName func(path string) string
}

// Option tunes Open.
type Option func(*options)

// WithHeptapodRunners maps Heptapod runner names (token[:8]) to runner short
// ids, used when the file to open is a Heptapod PAAS Runner state file.
func WithHeptapodRunners(runners map[string]string) Option {
	return func(o *options) { o.runners = runners }
}

// withRetryBackoff sets the back-off between retries of a failed write: it
// starts at minDelay and doubles up to maxDelay.
func withRetryBackoff(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.retryMin, o.retryMax = minDelay, maxDelay }
}

// withClock sets the clock that stamps saved_at.
func withClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// FileStore is the Store backed by a state file. Open it with Open.
//
// One background goroutine owns the writes: Put and Delete only update the
// in-memory map, mark the key dirty, bump a generation counter and wake the
// writer. The writer keeps the JSON encoding of every job: it re-encodes
// only the jobs changed since its last write, then writes the whole file
// atomically by concatenating the encodings, so a checkpoint costs one
// copy of the file's bytes plus the encoding of what changed. Changes made
// while a write is in flight are coalesced into the next one.
type FileStore struct {
	path     string
	log      logrus.FieldLogger
	opts     options
	warnings []string

	wake      chan struct{} // capacity 1: "there are changes"
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the writer exits
	closeOnce sync.Once

	// Fields below are owned by the writer goroutine (run).
	order  []*entry // the entries in the file, sorted as in the file
	failed int      // number of entries of order that cannot be encoded
	buf    []byte   // the last file written, reused

	mu sync.Mutex
	// Fields below are guarded by mu.
	jobs      map[Key]*entry // deleted ones stay until the writer saw it
	dirty     []*entry       // changed since the writer last looked
	gen       uint64         // bumped by every Put and Delete
	durable   uint64         // highest generation successfully written
	failedGen uint64         // generation of the last failed write, 0 after a success
	lastErr   error          // error of the last failed write
	progress  chan struct{}  // closed (and replaced) after every write attempt
	closed    bool           // Close called: Put and Delete are ignored
	stopped   bool           // the writer exited
	savedAt   time.Time      // saved_at of the last file read or written
}

var _ Store = (*FileStore)(nil)

// Open loads the state file at path and starts its writer. A missing file
// gives an empty store (the file is created on the first change). The file
// is never deleted; an existing one is made mode 0600. A file that cannot be
// decoded (corrupt, truncated, newer version) makes Open fail with an error
// naming the file, which is left byte-for-byte untouched. A Heptapod PAAS
// Runner file is imported (see ImportHeptapod): a copy of the original is
// kept as <path>.heptapod-backup and the converted state is written at once.
func Open(path string, log logrus.FieldLogger, opts ...Option) (*FileStore, error) {
	o := options{
		retryMin:   DefaultRetryMin,
		retryMax:   DefaultRetryMax,
		now:        time.Now,
		writeFile:  writeFileAtomic,
		backupName: func(p string) string { return p + ".heptapod-backup" },
	}
	for _, opt := range opts {
		opt(&o)
	}
	s := &FileStore{
		path:     path,
		log:      log.WithField("state_file", path),
		opts:     o,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		jobs:     map[Key]*entry{},
		progress: make(chan struct{}),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	go s.run()
	if s.gen > 0 {
		s.notify()
	}
	return s, nil
}

func (s *FileStore) load() error {
	dir := filepath.Dir(s.path)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("state file directory: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("state file directory %s: not a directory", dir)
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Info("no state file yet: starting with no tracked job")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state file: %w", err)
	}
	f, warnings, heptapod, err := decode(data, s.opts.runners)
	if err != nil {
		return fmt.Errorf("state file %s (left untouched): %w", s.path, err)
	}
	if err := ensureMode(s.path); err != nil {
		return err
	}
	s.warnings = warnings
	for _, w := range warnings {
		s.log.Warn(w)
	}
	for _, j := range f.Jobs {
		s.putLocked(j) // encoded by the first write
	}
	s.savedAt = f.SavedAt
	if heptapod {
		backup := s.backupPath()
		if err := s.opts.writeFile(backup, data); err != nil {
			return fmt.Errorf("back up heptapod state file: %w", err)
		}
		s.log.WithField("backup", backup).Warn("imported a Heptapod PAAS Runner state file; it will be rewritten in paas-runner's format")
		s.gen = 1 // write the converted state right away
	}
	s.log.WithField("jobs", len(s.jobs)).Info("state file loaded")
	return nil
}

func (s *FileStore) backupPath() string {
	p := s.opts.backupName(s.path)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return p
	}
	return p + "." + s.opts.now().UTC().Format("20060102T150405.000000000")
}

// ensureMode makes an existing state file mode 0600.
func ensureMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat state file: %w", err)
	}
	if st.Mode().Perm() != FileMode {
		if err := os.Chmod(path, FileMode); err != nil {
			return fmt.Errorf("restrict state file mode: %w", err)
		}
	}
	return nil
}

// Warnings returns what Open could not map exactly when importing (see
// ImportHeptapod); they were also logged.
func (s *FileStore) Warnings() []string { return s.warnings }

// Load implements Store.
func (s *FileStore) Load() (*File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs := make([]Job, 0, len(s.jobs))
	for _, e := range s.jobs {
		if e.present {
			jobs = append(jobs, e.job.clone())
		}
	}
	sortJobs(jobs)
	return &File{Version: Version, SavedAt: s.savedAt, Jobs: jobs}, nil
}

func snapshotLocked(m map[Key]Job, savedAt time.Time) *File {
	jobs := make([]Job, 0, len(m))
	for _, j := range m {
		jobs = append(jobs, j.clone())
	}
	sortJobs(jobs)
	return &File{Version: Version, SavedAt: savedAt, Jobs: jobs}
}

// Put implements Store.
func (s *FileStore) Put(j Job) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.log.WithField("job_id", j.JobID).Error("state store closed: change not recorded")
		return
	}
	s.putLocked(j.clone())
	s.gen++
	s.mu.Unlock()
	s.notify()
}

// putLocked records j (mu held, j owned by the store).
func (s *FileStore) putLocked(j Job) {
	e := s.jobs[j.Key()]
	if e == nil {
		e = &entry{key: j.Key()}
		s.jobs[e.key] = e
	}
	e.job, e.present = j, true
	s.markLocked(e)
}

// markLocked queues e for the writer (mu held).
func (s *FileStore) markLocked(e *entry) {
	if !e.dirty {
		e.dirty = true
		s.dirty = append(s.dirty, e)
	}
}

// Delete implements Store.
func (s *FileStore) Delete(k Key) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.log.WithField("job_id", k.JobID).Error("state store closed: change not recorded")
		return
	}
	e := s.jobs[k]
	if e == nil || !e.present {
		s.mu.Unlock()
		return
	}
	e.job, e.present = Job{}, false
	s.markLocked(e)
	s.gen++
	s.mu.Unlock()
	s.notify()
}

func (s *FileStore) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Sync implements Store: it waits until a write containing every change made
// before the call succeeded. If such a write failed, it returns that error
// at once (the writer keeps retrying).
func (s *FileStore) Sync(ctx context.Context) error {
	s.mu.Lock()
	target := s.gen
	for {
		switch {
		case s.durable >= target:
			s.mu.Unlock()
			return nil
		case s.stopped:
			err := errors.Join(ErrClosed, s.lastErr)
			s.mu.Unlock()
			return fmt.Errorf("sync state file %s: %w", s.path, err)
		case s.lastErr != nil && s.failedGen >= target:
			err := s.lastErr
			s.mu.Unlock()
			return fmt.Errorf("sync state file %s: %w", s.path, err)
		}
		ch := s.progress
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("sync state file %s: %w", s.path, context.Cause(ctx))
		case <-ch:
		}
		s.mu.Lock()
	}
}

// Close implements Store: it stops accepting changes, waits (up to ctx) for
// the pending ones to be written, then stops the writer. Changes that could
// not be written are reported in the error.
func (s *FileStore) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		err = s.Sync(ctx)
		close(s.stop)
		<-s.done
		s.mu.Lock()
		s.stopped = true
		close(s.progress)
		s.progress = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			s.log.WithError(err).Error("state store closed with unwritten changes")
		}
	})
	return err
}

// run is the writer goroutine.
func (s *FileStore) run() {
	defer close(s.done)
	var (
		delay time.Duration
		timer *time.Timer
	)
	for {
		if timer == nil {
			select {
			case <-s.stop:
				return
			case <-s.wake:
			}
		} else {
			// Back off after a failure; changes keep accumulating.
			select {
			case <-s.stop:
				timer.Stop()
				return
			case <-timer.C:
			}
			timer = nil
		}
		if s.writeOnce() {
			delay = 0
			continue
		}
		delay = min(max(2*delay, s.opts.retryMin), s.opts.retryMax)
		timer = time.NewTimer(delay)
	}
}

// writeOnce writes the current state if it changed since the last
// successful write; it reports success.
func (s *FileStore) writeOnce() bool {
	s.mu.Lock()
	if s.durable >= s.gen {
		s.mu.Unlock()
		return true
	}
	gen := s.gen
	changes := s.takeDirtyLocked()
	s.mu.Unlock()

	s.absorb(changes)
	now := s.opts.now().UTC()
	data, err := s.assemble(now)
	if err == nil {
		err = s.opts.writeFile(s.path, data)
	}

	s.mu.Lock()
	recovered := err == nil && s.lastErr != nil
	if err != nil {
		s.lastErr, s.failedGen = err, gen
	} else {
		s.lastErr, s.failedGen = nil, 0
		s.durable, s.savedAt = gen, now
	}
	close(s.progress)
	s.progress = make(chan struct{})
	s.mu.Unlock()

	switch {
	case err != nil:
		s.log.WithError(err).Error("write state file failed; retrying")
	case recovered:
		s.log.Info("state file written again after failures")
	default:
		s.log.WithField("jobs", len(s.order)).Debug("state file written")
	}
	return err == nil
}

// entry is one tracked job and the writer's encoding of it.
type entry struct {
	key Key
	// Guarded by FileStore.mu.
	job     Job  // never mutated once stored: Put replaces it
	present bool // false once deleted (until the writer drops the entry)
	dirty   bool // queued in FileStore.dirty
	// Owned by the writer goroutine.
	data   []byte // the job's JSON object, nil if err
	err    error  // why the job cannot be encoded (retried when it changes)
	cache  jobCache
	inFile bool // in FileStore.order
}

// change is one dirty entry as the writer found it.
type change struct {
	e       *entry
	job     Job
	present bool // false: deleted
}

// takeDirtyLocked returns the changed jobs and empties the dirty queue (mu
// held). Deleted entries leave the map here: a later Put of their key
// makes a new entry, seen by a later write. Stored jobs are never mutated,
// so the copies need no clone.
func (s *FileStore) takeDirtyLocked() []change {
	if len(s.dirty) == 0 {
		return nil
	}
	changes := make([]change, len(s.dirty))
	for i, e := range s.dirty {
		changes[i] = change{e: e, job: e.job, present: e.present}
		e.dirty = false
		if !e.present {
			delete(s.jobs, e.key)
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	return changes
}

// absorb re-encodes the changed jobs and updates the file order (writer
// only).
func (s *FileStore) absorb(changes []change) {
	var added, removed []*entry
	for i := range changes {
		c := &changes[i]
		e := c.e
		if e.err != nil {
			s.failed--
			e.err = nil
		}
		if !c.present {
			if e.inFile {
				removed = append(removed, e)
			}
			e.data, e.cache, e.inFile = nil, jobCache{}, false
			continue
		}
		if !e.inFile {
			e.inFile = true
			added = append(added, e)
		}
	}
	encodeAll(changes)
	for i := range changes {
		if changes[i].present && changes[i].e.err != nil {
			s.failed++
		}
	}
	s.reorder(added, removed)
}

// parallelEncodeMin is the number of changed jobs from which encodeAll
// spreads the encoding over the CPUs (a full checkpoint after a restart,
// or many jobs changed during one write).
const parallelEncodeMin = 2048

// encodeAll encodes the present jobs of changes into their entries, in
// parallel when there are many. Each entry belongs to one change.
func encodeAll(changes []change) {
	encode := func(part []change) {
		for i := range part {
			if c := &part[i]; c.present {
				c.e.data, c.e.err = appendJob(c.e.data[:0], &c.job, &c.e.cache)
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(changes)/(parallelEncodeMin/2))
	if workers < 2 {
		encode(changes)
		return
	}
	var wg sync.WaitGroup
	size := (len(changes) + workers - 1) / workers
	for part := range slices.Chunk(changes, size) {
		wg.Go(func() { encode(part) })
	}
	wg.Wait()
}

func compareEntries(a, b *entry) int {
	return cmp.Or(cmp.Compare(a.key.Runner, b.key.Runner), cmp.Compare(a.key.JobID, b.key.JobID))
}

// reorder keeps s.order sorted after entries were added and removed: by
// binary search for a few, by a merge and a full sort for many. Removals
// come first: a removed entry and an added one may share a key.
func (s *FileStore) reorder(added, removed []*entry) {
	if len(added)+len(removed) > 64 {
		s.order = slices.DeleteFunc(s.order, func(e *entry) bool { return !e.inFile })
		s.order = append(s.order, added...)
		slices.SortFunc(s.order, compareEntries)
		return
	}
	for _, e := range removed {
		if i, ok := slices.BinarySearchFunc(s.order, e, compareEntries); ok {
			s.order = slices.Delete(s.order, i, i+1)
		}
	}
	for _, e := range added {
		i, _ := slices.BinarySearchFunc(s.order, e, compareEntries)
		s.order = slices.Insert(s.order, i, e)
	}
}

// assemble builds the file from the cached encodings (writer only). The
// result is the same as Encode of the jobs.
func (s *FileStore) assemble(savedAt time.Time) ([]byte, error) {
	if s.failed > 0 {
		for _, e := range s.order {
			if e.err != nil {
				return nil, e.err
			}
		}
	}
	b, err := appendHeader(s.buf[:0], savedAt)
	if err != nil {
		return nil, err
	}
	for i, e := range s.order {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.data...)
	}
	b = append(b, "]}\n"...)
	s.buf = b
	return b, nil
}

// writeFileAtomic replaces path with data atomically, with mode FileMode.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data, FileMode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
