from railyard_trainer.cli import main

raise SystemExit(main())
