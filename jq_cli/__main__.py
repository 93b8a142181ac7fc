from jq_cli.cli.main import main

main()
