package systemx

// DefaultRecords is a small, realistic inventory: six services of the
// three kinds, owned by three teams, with dependencies between them and
// APIs on some. Tests start from it and change what they need; each call
// returns a fresh copy, so changing it never leaks into another test.
func DefaultRecords() Records {
	return Records{
		Services: []Service{
			{
				ID: "svc-001", Name: "orders", DisplayName: "Orders",
				Description: "Takes, prices and tracks customer orders.",
				Team:        "rockets", Tier: "gold", Lifecycle: "production", Kind: "service",
				Repo:      "https://git.example/rockets/orders",
				DependsOn: []string{"svc-002", "svc-005"},
				APIs: []API{{Name: "orders-api", Type: "openapi", Spec: "openapi: 3.0.3\n" +
					"info:\n  title: Orders API\n  version: 1.4.0\n" +
					"paths:\n  /orders:\n    get:\n      summary: List orders\n      responses:\n        '200':\n          description: The orders\n"}},
				Tags: []string{"go", "grpc"},
			},
			{
				ID: "svc-002", Name: "payments-gateway", DisplayName: "Payments Gateway",
				Description: "Talks to the card processors; the only service that sees card numbers.",
				Team:        "boosters", Tier: "gold", Lifecycle: "production", Kind: "service",
				Repo: "https://git.example/boosters/payments-gateway",
				APIs: []API{
					{Name: "payments-api", Type: "openapi", Spec: "openapi: 3.0.3\n" +
						"info:\n  title: Payments API\n  version: 2.0.0\npaths: {}\n"},
					{Name: "payment-events", Type: "asyncapi", Spec: "asyncapi: 2.6.0\n" +
						"info:\n  title: Payment events\n  version: 1.0.0\nchannels: {}\n"},
				},
				Tags: []string{"java", "pci"},
			},
			{
				ID: "svc-003", Name: "storefront", DisplayName: "Storefront",
				Description: "The public shop web site.",
				Team:        "rockets", Tier: "silver", Lifecycle: "production", Kind: "website",
				Repo:      "https://git.example/rockets/storefront",
				DependsOn: []string{"svc-001", "svc-004"},
				Tags:      []string{"typescript"},
			},
			{
				ID: "svc-004", Name: "ui-kit", DisplayName: "UI Kit",
				Description: "Shared web components and design tokens.",
				Team:        "ground-control", Tier: "bronze", Lifecycle: "production", Kind: "library",
				Repo: "https://git.example/ground-control/ui-kit",
				Tags: []string{"typescript", "design-system"},
			},
			{
				ID: "svc-005", Name: "inventory", DisplayName: "Inventory",
				Description: "Stock levels per warehouse.",
				Team:        "boosters", Tier: "silver", Lifecycle: "production", Kind: "service",
				Repo: "https://git.example/boosters/inventory",
				APIs: []API{{Name: "inventory-api", Type: "graphql", Spec: "type Query {\n  stock(sku: ID!): Int\n}\n"}},
				Tags: []string{"go"},
			},
			{
				ID: "svc-006", Name: "shipping-labels", DisplayName: "Shipping Labels",
				Description: "Prints carrier labels; being rewritten into orders.",
				Team:        "ground-control", Tier: "bronze", Lifecycle: "experimental", Kind: "service",
				Repo:      "https://git.example/ground-control/shipping-labels",
				DependsOn: []string{"svc-001"},
				Tags:      []string{"python"},
			},
		},
		Teams: []Team{
			{ID: "rockets", Name: "Rockets", Members: []string{"alice", "bob"}},
			{ID: "boosters", Name: "Boosters", Members: []string{"carol"}},
			{ID: "ground-control", Name: "Ground Control", Members: []string{"dave", "erin"}},
		},
	}
}
