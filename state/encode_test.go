package state

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/internal/fuzzseed"
)

// marshalFile is the reference encoding: encoding/json of the whole File,
// which the hand-written encoder must reproduce byte for byte.
func marshalFile(t *testing.T, f *File) []byte {
	t.Helper()
	out := File{Version: Version, SavedAt: f.SavedAt.UTC(), Jobs: f.Jobs}
	if out.Jobs == nil {
		out.Jobs = []Job{}
	}
	sortJobs(out.Jobs)
	b, err := json.Marshal(&out)
	require.NoError(t, err)
	return append(b, '\n')
}

func TestAppendJobMatchesMarshal(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	full := testJob("3fa9c2d17b04", 4817)
	full.ProjectID, full.Flavor, full.Weight, full.TraceOffset = 43, "M", 2.378414230005442, 5120
	full.ExpectedWeight = 2.378414230005442
	full.Phase = PhaseDecommissioning
	full.Resource = json.RawMessage(`{"id":"app_1","weight":2.37,"launched":true}`)
	full.Payload = json.RawMessage(`{"id":4817,"token":"t","variables":[{"key":"K","value":"v"}]}`)
	full.PendingFailure = &Failure{Reason: "runner_system_failure", Message: "host gone"}
	full.StartedAt = time.Date(2026, 11, 23, 10, 1, 2, 345678900, paris)
	full.FinishedAt = time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC)
	full.KeepResource = true
	full.AcceptPending = true

	tests := map[string]func(j *Job){
		"minimal":      func(*Job) {},
		"full":         func(j *Job) { *j = full },
		"zero job":     func(j *Job) { *j = Job{} },
		"html escapes": func(j *Job) { j.Token, j.Flavor = "<a&b>", "x>y" },
		"quotes and control": func(j *Job) {
			j.Runner, j.ResourceName = "a\"b\\c", "line\nbreak\ttab\x01"
		},
		"unicode":             func(j *Job) { j.Token, j.Flavor = "héllo wörld \u2028\u2029 ✓", "\xff\xfe invalid" },
		"tiny and huge float": func(j *Job) { j.ExpectedWeight, j.Weight = 1e-7, 1e21 },
		"negative floats":     func(j *Job) { j.ExpectedWeight, j.Weight = -0.5, -3e-9 },
		"negative zero":       func(j *Job) { j.ExpectedWeight, j.Weight = math.Copysign(0, -1), math.Copysign(0, -1) },
		"raw with spaces": func(j *Job) {
			j.Resource = json.RawMessage(" {\n \"id\" : \"a b\", \"n\": [1, 2] }\n")
			j.Payload = json.RawMessage(`{"s":"<script>&\u2028","u":"` + "\u2028" + `"}`)
		},
		"raw scalars":     func(j *Job) { j.Resource, j.Payload = json.RawMessage(`null`), json.RawMessage(`"x"`) },
		"negative ids":    func(j *Job) { j.JobID, j.ProjectID, j.TraceOffset = -1, -2, -3 },
		"empty failure":   func(j *Job) { j.PendingFailure = &Failure{} },
		"zoned acquired":  func(j *Job) { j.AcquiredAt = time.Date(2026, 1, 2, 3, 4, 5, 6, paris) },
		"zero acquired":   func(j *Job) { j.AcquiredAt = time.Time{} },
		"monotonic clock": func(j *Job) { j.StartedAt = time.Now() },
		"accept pending":  func(j *Job) { j.AcceptPending = true },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			j := testJob("r", 1)
			mutate(&j)
			want, err := json.Marshal(&j)
			require.NoError(t, err)
			got, err := appendJob(nil, &j, nil)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))

			var c jobCache
			for range 2 { // the second time from the raw cache
				got, err = appendJob([]byte("prefix"), &j, &c)
				require.NoError(t, err)
				require.Equal(t, "prefix"+string(want), string(got))
			}

			f := &File{SavedAt: time.Date(2026, 11, 23, 11, 0, 0, 0, paris), Jobs: []Job{j, testJob("a", 9)}}
			enc, err := Encode(f)
			require.NoError(t, err)
			require.Equal(t, string(marshalFile(t, f)), string(enc))
		})
	}
}

// TestAppendJobCoversEveryField sets each field of Job, one at a time, to
// a non-zero value by reflection: a field added to Job but not to
// appendJob makes the encodings differ (it would be missing from the file).
func TestAppendJobCoversEveryField(t *testing.T) {
	typ := reflect.TypeFor[Job]()
	for i := range typ.NumField() {
		field := typ.Field(i)
		t.Run(field.Name, func(t *testing.T) {
			var j Job
			v := reflect.ValueOf(&j).Elem().Field(i)
			switch field.Type {
			case reflect.TypeFor[json.RawMessage]():
				v.SetBytes([]byte(`{"k":1}`))
			case reflect.TypeFor[time.Time]():
				v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			case reflect.TypeFor[*Failure]():
				v.Set(reflect.ValueOf(&Failure{Reason: "r", Message: "m"}))
			default:
				switch v.Kind() {
				case reflect.String:
					v.SetString("x")
				case reflect.Int64:
					v.SetInt(7)
				case reflect.Float64:
					v.SetFloat(1.5)
				case reflect.Bool:
					v.SetBool(true)
				default:
					require.Failf(t, "unhandled field type", "%s %s: teach this test and appendJob about it", field.Name, field.Type)
				}
			}
			want, err := json.Marshal(&j)
			require.NoError(t, err)
			got, err := appendJob(nil, &j, nil)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}

func TestAppendJobRejectsWhatMarshalRejects(t *testing.T) {
	tests := map[string]func(j *Job){
		"NaN weight":      func(j *Job) { j.Weight = math.NaN() },
		"infinite weight": func(j *Job) { j.ExpectedWeight = math.Inf(1) },
		"bad resource":    func(j *Job) { j.Resource = json.RawMessage(`{"id":`) },
		"bad payload":     func(j *Job) { j.Payload = json.RawMessage(`{} {}`) },
		"year 10000":      func(j *Job) { j.AcquiredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			j := testJob("r", 1)
			mutate(&j)
			_, err := json.Marshal(&j)
			require.Error(t, err)
			_, err = appendJob(nil, &j, &jobCache{})
			require.Error(t, err)
			_, err = Encode(&File{Jobs: []Job{j}})
			require.Error(t, err)
		})
	}
}

// TestFileStoreWritesEncode checks that the file assembled from cached
// encodings, after updates, additions and deletions, is exactly Encode of
// the store's jobs.
func TestFileStoreWritesEncode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	saved := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, path, withClock(func() time.Time { return saved }))
	check := func() {
		t.Helper()
		require.NoError(t, s.Sync(t.Context()))
		f, err := s.Load()
		require.NoError(t, err)
		want, err := Encode(f)
		require.NoError(t, err)
		require.Equal(t, string(want), string(mustRead(t, path)))
	}
	for i := range int64(200) { // more than a binary-search reorder
		s.Put(testJob([]string{"b", "a", "c"}[i%3], 1000-i))
	}
	check()
	j := testJob("a", 999)
	j.Phase, j.Resource = PhaseRunning, json.RawMessage(`{ "id": "app_999" }`)
	s.Put(j)
	s.Delete(Key{Runner: "b", JobID: 1000})
	s.Put(testJob("a", 5000))
	s.Put(testJob("0", 1))
	check()
	for i := range int64(200) {
		s.Delete(Key{Runner: []string{"b", "a", "c"}[i%3], JobID: 1000 - i})
	}
	check()
	require.Contains(t, string(mustRead(t, path)), `"jobs":[{"runner":"0"`)
	for i := range int64(3 * parallelEncodeMin) { // encoded in parallel
		j := testJob("p", i)
		j.Flavor = strconv.FormatInt(i, 10)
		s.Put(j)
	}
	check()

	// Reopening encodes the loaded jobs: the next write is the same file.
	require.NoError(t, s.Close(t.Context()))
	s, _ = openTest(t, path, withClock(func() time.Time { return saved }))
	s.Put(testJob("z", 1))
	s.Delete(Key{Runner: "z", JobID: 1})
	check()
}

// TestFileStoreRandomChanges applies random batches of puts and deletes
// (re-puts of deleted keys included) and checks after each that the file
// is Encode of the store's jobs.
func TestFileStoreRandomChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	saved := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, path, withClock(func() time.Time { return saved }))
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 60 {
		for range rng.IntN([]int{5, 200}[round%2]) {
			id := rng.Int64N(150)
			runner := []string{"a", "b"}[rng.IntN(2)]
			if rng.IntN(3) == 0 {
				s.Delete(Key{Runner: runner, JobID: id})
				continue
			}
			j := testJob(runner, id)
			j.TraceOffset = int64(round)
			if rng.IntN(2) == 0 {
				j.Resource = json.RawMessage(`{"id":"app","round":` + strconv.Itoa(round%3) + `}`)
			}
			s.Put(j)
		}
		require.NoError(t, s.Sync(t.Context()))
		f, err := s.Load()
		require.NoError(t, err)
		want, err := Encode(f)
		require.NoError(t, err)
		got := mustRead(t, path)
		require.Equal(t, string(want), string(got), "round %d", round)
	}
}

// TestFileStoreUnencodableJob: a job that cannot be encoded fails the
// writes (as a failing disk would) until it is replaced or deleted.
func TestFileStoreUnencodableJob(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, _ := openTest(t, path, withRetryBackoff(time.Millisecond, time.Millisecond))
	s.Put(testJob("r", 1))
	require.NoError(t, s.Sync(t.Context()))
	bad := testJob("r", 2)
	bad.Weight = math.NaN()
	s.Put(bad)
	require.ErrorContains(t, s.Sync(t.Context()), "unsupported value NaN")
	f, _, err := ReadFile(path, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, 1, "the last good file is kept")

	s.Put(testJob("r", 2))
	require.NoError(t, s.Sync(t.Context()))
	f, _, err = ReadFile(path, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, 2)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())
}

// FuzzEncodeMatchesMarshal: for every file the loader accepts, Encode gives
// the bytes encoding/json gives (or fails when it fails). Seeds:
// testdata/*.json.
func FuzzEncodeMatchesMarshal(f *testing.F) {
	fuzzseed.AddFiles(f, filepath.Join("testdata", "*.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, _, err := Decode(data, map[string]string{"glrt-abc": "3fa9c2d17b04"})
		if err != nil {
			return
		}
		out := File{Version: Version, SavedAt: file.SavedAt.UTC(), Jobs: file.Jobs}
		if out.Jobs == nil {
			out.Jobs = []Job{}
		}
		want, werr := json.Marshal(&out)
		got, gerr := Encode(file)
		if werr != nil {
			require.Error(t, gerr)
			return
		}
		require.NoError(t, gerr)
		require.Equal(t, string(append(want, '\n')), string(got))
	})
}
