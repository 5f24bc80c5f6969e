echo "two_hosts: not written yet"; exit 77
