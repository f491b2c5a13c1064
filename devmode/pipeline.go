package devmode

import (
	"fmt"

	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

// DemoJob is one job of the demo pipeline.
type DemoJob struct {
	Name string
	// Flavor is CI_CLEVER_CLOUD_FLAVOR ("" = the runner's default, S).
	Flavor      string
	Script      []string
	AfterScript []string
	// Want is the expected final state (success or failed).
	Want string
	// WantReason is the expected failure_reason when Want is failed.
	WantReason string
}

// demoDefaultFlavor is local_default_flavor of the demo runner.
const demoDefaultFlavor = "S"

// Flavors of the demo runner (local_flavors), MiB of RAM.
var demoFlavors = []struct {
	Name string
	MiB  int
	CPUs float64
}{{"XS", 512, 0.5}, {"S", 1024, 1}, {"M", 2048, 2}, {"L", 4096, 4}}

// DemoPipeline returns the demo pipeline; scripts sleep scale seconds per
// unit.
func DemoPipeline(scale float64) []DemoJob {
	sleep := func(units float64) string { return fmt.Sprintf("sleep %.2f", units*scale) }
	return []DemoJob{
		{Name: "build", Flavor: "S", Want: gitlabfake.StateSuccess, Script: []string{
			"echo compiling the demo project", sleep(2), "cat VERSION", "echo build done",
		}},
		{Name: "lint", Flavor: "XS", Want: gitlabfake.StateSuccess, Script: []string{
			"echo checking formatting", sleep(1), "test -f main.go && echo main.go looks fine",
		}},
		{Name: "unit-tests", Flavor: "M", Want: gitlabfake.StateSuccess, Script: []string{
			"for i in 1 2 3 4; do echo \"test $i ok\"; " + sleep(0.5) + "; done",
		}},
		{Name: "integration-tests", Flavor: "L", Want: gitlabfake.StateSuccess, Script: []string{
			"echo starting the heavy integration suite", sleep(3), "echo integration ok",
		}, AfterScript: []string{"echo cleaning up integration fixtures"}},
		{Name: "flaky-test", Flavor: "S", Want: gitlabfake.StateFailed, WantReason: "script_failure", Script: []string{
			"echo this test fails on purpose", sleep(1), "exit 1", "echo never printed",
		}, AfterScript: []string{"echo after_script still runs after a failure"}},
		{Name: "docs", Flavor: "XS", Want: gitlabfake.StateSuccess, Script: []string{
			"cat README.md", "git_head=$(cat .git/HEAD); echo \"checked out $git_head\"",
		}},
		{Name: "huge-job", Flavor: "XXL", Want: gitlabfake.StateFailed, WantReason: "script_failure", Script: []string{
			"echo never runs: flavor XXL does not exist",
		}},
		{Name: "deploy-preview", Want: gitlabfake.StateSuccess, Script: []string{
			"echo \"deploying with token $CI_JOB_TOKEN (masked in the log)\"", sleep(1), "echo preview deployed",
		}},
	}
}
