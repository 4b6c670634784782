# Console greeting: the sensor's health at a glance.
[ -t 1 ] && /usr/bin/osect-sensor status 2>/dev/null
