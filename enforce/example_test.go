package enforce_test

import (
	"errors"
	"fmt"

	"github.com/promgate/promgate/enforce"
)

func ExampleRewrite() {
	e := enforce.Enforcement{"namespace": {"team-a", "team-a-staging"}}
	for _, s := range []string{
		`sum by (pod) (rate(http_requests_total[5m]))`,
		`up{namespace=~"team-a.*"} / on () group_left count(up{namespace!="team-a"})`,
		`up{namespace="kube-system"}`,
		`1+1`,
	} {
		q, err := enforce.ParseQuery(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		out, err := enforce.Rewrite(q, e)
		var ee *enforce.Error
		if errors.As(err, &ee) {
			fmt.Printf("%v: %s\n", ee.Kind, ee.Msg)
			continue
		}
		fmt.Println(out)
	}
	// Output:
	// sum by (pod) (rate(http_requests_total{namespace=~"team-a|team-a-staging"}[5m]))
	// up{namespace=~"team-a.*",namespace=~"team-a|team-a-staging"} / on () group_left () count(up{namespace!="team-a",namespace="team-a-staging"})
	// forbidden: label namespace="kube-system" is not allowed
	// 1 + 1
}

func ExampleMatchers() {
	e := enforce.Enforcement{"namespace": {"team-a"}}
	out, err := enforce.Matchers([]string{`up`, `{job="node"}`}, e)
	fmt.Println(out, err)
	out, err = enforce.Matchers(nil, e)
	fmt.Println(out, err)
	// Output:
	// [{__name__="up",namespace="team-a"} {job="node",namespace="team-a"}] <nil>
	// [{namespace="team-a"}] <nil>
}
