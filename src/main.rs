fn main() {
    println!("pythond: not yet");
}
