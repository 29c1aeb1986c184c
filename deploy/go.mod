module github.com/closeloop/closeloop/deploy

go 1.26.8

require github.com/closeloop/closeloop/proto v0.0.0

require (
	google.golang.org/protobuf v1.36.12 // indirect
	gopkg.in/yaml.v3 v3.0.1
)

replace github.com/closeloop/closeloop/proto => ../proto
