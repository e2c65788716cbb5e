-- wrk: PUT with an empty body, as the monitoring system sends.
wrk.method = "PUT"
