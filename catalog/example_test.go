package catalog_test

import (
	"fmt"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// Short refs take their kind and namespace from the context they appear in,
// and always print in the canonical lowercased form used as the store key.
func ExampleParseRef() {
	r, err := catalog.ParseRef("team-Rockets", catalog.RefDefaults{Kind: "Group", Namespace: "platform"})
	if err != nil {
		panic(err)
	}
	fmt.Println(r)
	full, _ := catalog.ParseRef("Component:default/Orders", catalog.RefDefaults{})
	fmt.Println(full, full.Equal(catalog.MustParseRef("component:DEFAULT/orders")))
	// Output:
	// group:platform/team-rockets
	// component:default/orders true
}
