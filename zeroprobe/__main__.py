from zeroprobe.cli import main

raise SystemExit(main())
