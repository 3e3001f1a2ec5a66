fn main() {
    let code =
        ke2_standin::run::main_with(std::env::args_os().collect(), &|k| std::env::var(k).ok());
    std::process::exit(code);
}
