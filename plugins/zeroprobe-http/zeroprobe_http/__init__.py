"""zeroprobe-http: the http_endpoint probe kind, a plugin of zeroprobe (entry point
`zeroprobe.kinds`), shipped in zeroprobe's repository as the first example of one."""
