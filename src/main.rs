//! The `jiuzhu` command: thin wiring of the engine, rules and adapters crates.

fn main() {
    println!("jiuzhu");
}
