module github.com/hasses-go/hasses

go 1.26.8

require golang.org/x/sys v0.49.0
