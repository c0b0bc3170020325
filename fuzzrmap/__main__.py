from fuzzrmap.cli import main

raise SystemExit(main())
