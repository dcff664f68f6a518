module github.com/cdcbridge/cdcbridge/deploy

go 1.26.8

replace github.com/cdcbridge/cdcbridge => ../
