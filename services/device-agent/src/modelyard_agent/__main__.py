from modelyard_agent.cli import main

main()
