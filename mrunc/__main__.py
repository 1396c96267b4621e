from mrunc.cli import main

raise SystemExit(main())
