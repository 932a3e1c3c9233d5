if __name__ == "__main__":  # not when a worker process started by spawn imports this module
    from .cli import main

    main(prog_name="painter")
