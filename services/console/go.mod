module github.com/closeloop/closeloop/services/console

go 1.26.8

require (
	github.com/closeloop/closeloop/libs v0.0.0
	github.com/closeloop/closeloop/proto v0.0.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nats.go v1.55.0 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel v1.47.0 // indirect
	go.opentelemetry.io/otel/log v1.47.0 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
	go.opentelemetry.io/otel/trace v1.47.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace (
	github.com/closeloop/closeloop/libs => ../../libs
	github.com/closeloop/closeloop/libs/esdb => ../../libs/esdb
	github.com/closeloop/closeloop/proto => ../../proto
	github.com/closeloop/closeloop/services/intake => ../../services/intake
	github.com/closeloop/closeloop/services/routing => ../../services/routing
)
