// termrooms web client entry point (issue #6)
