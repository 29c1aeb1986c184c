module github.com/closeloop/closeloop/cmd/closeloopctl

go 1.26.8

require (
	github.com/closeloop/closeloop/libs v0.0.0
	github.com/closeloop/closeloop/proto v0.0.0
)

replace (
	github.com/closeloop/closeloop/libs => ../../libs
	github.com/closeloop/closeloop/proto => ../../proto
)
