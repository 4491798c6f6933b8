mod args;
mod flags;
mod outname;
mod progress;

fn main() {}
